"""`python -m hypertracker_source.commands`: the `hypertracker` command."""

import sys

from hypertracker_source.commands import main

sys.exit(main())
