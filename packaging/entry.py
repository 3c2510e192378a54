"""The bundle's entry point: the same ``feature-map-explorer`` command as a source install."""

import multiprocessing
import sys

if __name__ == "__main__":
    # A frozen app re-executes itself for multiprocessing children (e.g. DataLoader workers).
    multiprocessing.freeze_support()
    from explorer.cli import main
    sys.exit(main())
