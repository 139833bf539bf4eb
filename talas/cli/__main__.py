"""`python -m talas.cli ...` runs the command line (as the `talas` script does)."""

import sys

from talas.cli import main

sys.exit(main())
