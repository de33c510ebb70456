"""The files one stage hands to the next. Each has one contract module, imported by the file's
writer and by its readers, so a field and the file's `schema` version have one home:

| file | contract | writer | readers |
| --- | --- | --- | --- |
| `offload run --json`, stats.json | offloader/contracts/run_report.py | runtime/run.py, runtime/child.py | tune, gpumodel, ship |
| plan.json | offloader/contracts/plan.py | tune/outputs.py | deployer, service, report.html |
| profile.json | sizing/profile.py | tune (times), `offload profile` (CPU scaling) | the sizer |
| sizing.json | sizing/document.py | sizing/sizer.py | deployer, service |
| catalog TOML | sizing/catalog.py | people | the sizer, the deployer |

Readers accept fields they do not know (a newer writer may add some) and fill optional
fields a writer left out; a newer `schema` than the reader knows is refused with a clear message.
"""
