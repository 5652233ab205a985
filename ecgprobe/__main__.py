"""``python -m ecgprobe`` runs the command line."""

import sys

from ecgprobe.cli import main

sys.exit(main())
