"""Benchmarks: this library against what a user would pick instead, side by side.

Run `python -m benchmarks [--quick] [--out DIR]` from the repository root. Each
workload group lives in its own module and registers itself in
`common.GROUPS` with `@register_group`; a group is a function
`run(quick, progress)` returning `Result` records. `common` turns the records of
every group into results.md, results.json and the charts.

To add a group, write a module whose group function is decorated with
`@register_group(name, title, notes)` and import it in `__main__`. Groups:

- `inprocess`: Engine against hand-written sqlite3 (inprocess.py, raw_sqlite.py).
- `transport`: one client through the server against a pyzmq echo (transport.py).
- `writers`: 1-16 processes saving rows through the server, directly to the
  file, through a BaseManager and into PostgreSQL (writers.py).
- `readers`: 1-16 processes finding rows while 2 write (readers.py).
- `bulk`: save_many through the server against in-process (bulk.py).

The multi-process groups share processes.py (worker pool, start barrier,
latency summaries), ops.py (what a worker does), manager.py, postgres.py and
throughput.py (their table and charts).
"""
