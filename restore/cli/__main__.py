"""``python -m restore.cli`` (what torchrun's ``-m`` runs)."""
import sys

from . import main

sys.exit(main())
