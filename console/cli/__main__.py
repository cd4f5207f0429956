"""``python -m console.cli``: the ``taskdeck`` command."""

import sys

from console.cli.main import main

sys.exit(main())
