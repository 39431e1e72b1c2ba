"""``python -m app.launch``: ``app-check``."""

import sys

from app.launch.cli import check_main

sys.exit(check_main())
