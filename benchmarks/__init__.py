"""Benchmarks: this library against what a user would pick instead, side by side.

Run `python -m benchmarks [--quick] [--out DIR]` from the repository root. Each
workload group lives in its own module and registers itself in
`common.GROUPS` with `@register_group`; a group is a function
`run(quick, progress)` returning `Result` records. `common` turns the records of
every group into results.md, results.json and the charts.

To add a group, write a module whose group function is decorated with
`@register_group(name, title, notes)` and import it in `__main__`. Implemented
groups: `inprocess` (Engine against hand-written sqlite3).
"""
