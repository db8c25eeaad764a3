"""``python -m atomsim.cli``: the same as the ``atomsim`` script."""

import sys

from atomsim.cli import main

sys.exit(main())
