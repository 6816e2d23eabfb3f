#!/usr/bin/env python3
"""Fill the database with a generated history: a thin wrapper of `stf history generate`.

scripts/generate_history.py --days 30 --orders-per-day 50 [--seed N] [--scenario FILE]
                            [--db URL] [--start DATE] [--bag DIR] [--append | --replace]
"""

from __future__ import annotations

import sys

from stf_nodes.cli.main import main

if __name__ == '__main__':
    sys.exit(main(['history', 'generate', *sys.argv[1:]]))
