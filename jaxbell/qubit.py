"""Old home of :mod:`jaxbell.rates.qubit` (``import jaxbell.qubit`` keeps working).

This name is the same module object, private names included.
"""

import sys

from jaxbell.rates import qubit as _module

sys.modules[__name__] = _module
