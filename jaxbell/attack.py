"""Old home of :mod:`jaxbell.rates.attack` (``import jaxbell.attack`` keeps working).

This name is the same module object, private names included.
"""

import sys

from jaxbell.rates import attack as _module

sys.modules[__name__] = _module
