"""`python -m worker` is `postrefresh`."""

import sys

from worker.cli.program import main

sys.exit(main())
