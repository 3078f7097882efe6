# The two commands of the README: `make demo` and `make test`.
# Both create .venv on first use and install the project into it; `make test` adds the dev extras
# (pytest, pytest-xdist, pytest-benchmark, ray, monai, nnunetv2), which the demo does not need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: demo test bench venv clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# This torch/torchvision pair is on the local disk of our machines (no download).
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	# PYTHONWARNINGS: setuptools' notice on every editable build is not for our users.
	PYTHONWARNINGS=ignore $(PY) -m pip install --quiet -e .
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	PYTHONWARNINGS=ignore $(PY) -m pip install --quiet -e '.[dev]'
	touch $(DEV_STAMP)

demo: $(STAMP)
	$(PY) run_benchmark.py demo

# One pytest worker per core (at most 4), one torch thread each: 2 threads per worker on 2 busy cores
# thrash. Measured on 2 cores: 7 min 6 s, against 12 min 38 s serially.
test: $(DEV_STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n auto --maxprocesses 4

bench: $(DEV_STAMP)
	$(PY) -m pytest benchmarks --benchmark-only

clean-venv:
	rm -rf $(VENV)
