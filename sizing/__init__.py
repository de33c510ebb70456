"""VM sizing (issue 5): choose the CPU size x vGPU slice with the best cost-performance.

profile.json (from `offload tune`, plus `cpu_scaling` from `offload profile`) and a catalog TOML
go in; sizing.json, an HTML cost/performance report and a CSV come out. The Python entry point is
`sizing.sizer.size(load_profile(path), load_catalog(path_or_None), Options(...))`; the CLI verbs
`offload size` and `offload profile` live in sizing/cli.py (`register(group)`).

Nothing heavy is imported here: pandas is loaded only when a report is written.
"""
