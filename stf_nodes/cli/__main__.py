"""`python -m stf_nodes.cli` runs the `stf` command."""

from stf_nodes.cli.main import main
from stf_nodes.process import exit_process

exit_process(main())
