"""``python -m jaxbell.cli``: the ``jaxbell`` command."""

import sys

from jaxbell.cli import main

sys.exit(main())
