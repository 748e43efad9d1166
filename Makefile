# `make demo` and `make test` each build .venv when it is missing, install, and run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install benchmarks clean

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The registry's regular torch + torchvision pair (torchvision needs its matching torch build).
	$(PY) -m pip install --quiet torch torchvision
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) start_experiments.py --config config_files/demo.yml

test: $(STAMP)
	$(PY) -m pytest -n 2 -q tests

benchmarks: $(STAMP)
	$(PY) -m benchmarks.ranking
	$(PY) -m benchmarks.train_step
	$(PY) -m benchmarks.vnpr_score
	$(PY) -m benchmarks.peers
	$(PY) benchmarks/vbpr_epoch.py
	$(PY) benchmarks/extract.py
	$(PY) benchmarks/visdiv.py --quick
	$(PY) benchmarks/transactions.py
	$(PY) benchmarks/imgrec.py
	$(PY) benchmarks/aggregation.py
	$(PY) benchmarks/ray_tuning.py

clean:
	rm -rf $(VENV) results
