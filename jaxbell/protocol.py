"""Old home of :mod:`jaxbell.rates.protocol` (``import jaxbell.protocol`` keeps working).

This name is the same module object, private names included.
"""

import sys

from jaxbell.rates import protocol as _module

sys.modules[__name__] = _module
