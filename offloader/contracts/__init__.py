"""The files one stage hands to the next. Each has one contract module, imported by the file's
writer and by its readers, so a field and the file's `schema` version have one home:

- `offload run --json` and stats.json: offloader/contracts/run_report.py; written by
  runtime/run.py and (stats.json) runtime/child.py, read by the tuner, the GPU model and ship.py;
- plan.json: offloader/contracts/plan.py; written by tune/outputs.py, read by the deployer, the
  service and report.html;
- profile.json: sizing/profile.py; tune writes the times, `offload profile` the CPU scaling,
  the sizer reads both;
- sizing.json: sizing/document.py; written by sizing/sizer.py, read by the deployer and the service;
- the catalog TOML: sizing/catalog.py; written by people, read by the sizer and the deployer.

Readers accept fields they do not know (a newer writer may add some) and fill optional
fields a writer left out; a newer `schema` than the reader knows is refused with a clear message.
"""
