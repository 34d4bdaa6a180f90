"""Old home of :mod:`jaxbell.rates.bff` (``import jaxbell.bff`` keeps working).

This name is the same module object, private names included.
"""

import sys

from jaxbell.rates import bff as _module

sys.modules[__name__] = _module
