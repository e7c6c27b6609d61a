"""``python -m skiff.engine.monitor --id ID ...``: the monitor process (see `main`)."""

import sys

from skiff.engine.monitor.main import main

main(sys.argv[1:])
