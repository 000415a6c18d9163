"""`python -m micro_namedtuple_sqlite_persister.loadtest`; see `--help`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
