"""`python -m stf_nodes.cli` runs the `stf` command."""

import sys

from stf_nodes.cli.main import main

sys.exit(main())
