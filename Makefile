# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_SAMPLE ?= samples/heat2d.c

.PHONY: demo test bench clean

$(STAMP): pyproject.toml setup.cfg scripts/bootstrap-debian.sh
	bash scripts/bootstrap-debian.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: $(STAMP)
	$(VENV)/bin/offload analyze $(DEMO_SAMPLE)
	$(VENV)/bin/offload run $(DEMO_SAMPLE) --gpu-regions all --device auto
	$(VENV)/bin/offload tune $(DEMO_SAMPLE) --device auto

test: $(STAMP)
	bash scripts/setup-libvirt.sh
	bash scripts/setup-postgres.sh
	$(PY) -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(PY) benchmarks/bench_analyze.py
	$(PY) benchmarks/bench_emulator.py
	$(PY) benchmarks/bench_launch.py
	$(PY) benchmarks/bench_transfers.py
	$(PY) benchmarks/bench_runtime_scaling.py
	$(PY) benchmarks/record_sample_spaces.py
	$(PY) benchmarks/bench_tune_strategies.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis
