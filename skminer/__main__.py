"""``python -m skminer`` is the ``skminer`` command."""

import sys

from .cli import main

sys.exit(main())
