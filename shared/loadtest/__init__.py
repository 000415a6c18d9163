"""The load test: the notebook's mix from many worker processes through one server.

    python -m micro_namedtuple_sqlite_persister.loadtest [--workers N]
        [--db PATH | --connect ADDRESS] [--seconds S | --rows R]

It starts a server on a temporary database (or `--db PATH`) unless `--connect`
names a running one, runs the workers (`workload`, started and stopped by
`runner`), then checks that every acknowledged row is stored exactly once and
prints latency and throughput per operation (`report`).
"""

from .cli import main, run_load_test

__all__ = ["main", "run_load_test"]
