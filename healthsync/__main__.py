"""`python -m healthsync`: the same entry point as the `healthsync` console script."""

import sys

from healthsync.sync.cli import main

sys.exit(main())
