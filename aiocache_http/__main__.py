"""``python -m aiocache_http``: the ``aiocache-http`` command."""

import sys

from .cli import main

sys.exit(main())
