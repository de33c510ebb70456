"""The files one stage hands to the next, one module each, imported by the file's writer and
by every reader, so a field has one home:

- `run_report`: `offload run --json` (RunReport, RegionReport, typed failures) and the
  statistics the runtime writes from inside the program (stats.json);
- `plan`: plan.json, written by `offload tune`, read by the deployer, the service and report.html;
- `profile`: profile.json, written in parts by `offload tune` and `offload profile`, read by the sizer;
- `sizing`: sizing.json, written by `offload size`, read by the deployer and the service;
- the catalog TOML, written by people: `sizing.catalog` reads and validates it for the sizer
  and the deployer alike.

Each module keeps its file's `schema` version in one constant. Readers accept fields they do
not know (a newer writer may add some) and fill optional fields a writer left out.
"""
