"""``python -m meanfield ...``: the ``meanfield`` command."""
import sys

from .tools.cli import main

sys.exit(main())
