# The two commands of the README:
#   make repro   set up from nothing, then run the pipeline (quick profile, offline)
#   make test    set up from nothing, then run the tests (RECORD=1: write the wall time, and the Flower
#                engine tests' share of it, to results/test_time.json; tests/conftest.py)
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PROFILE ?= quick
STAMP  := $(VENV)/.medhe-installed

.PHONY: setup repro status test test-fast test-core coverage mutants bench clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml tools/register_kernel.py
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11) on PATH, or run: make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet -e '.[flower]'  # the package and its Flower extra (pinned as in requirements.txt)
	$(PY) tools/register_kernel.py >/dev/null
	$(PY) -c "import medhe, torch, tenseal, transformers, dp_accounting, flwr; print('medhe environment ready:', torch.__version__)"
	touch $(STAMP)

repro: setup
	@# tools/repro.sh keeps one DVC lock per profile (locks/<profile>.lock), saved on every exit,
	@# so a stopped run resumes where it stopped
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" HF_HUB_OFFLINE=1 bash tools/repro.sh $(PROFILE)

status: setup  # which stages of PROFILE ran on older code or parameters, or never ran, and what changed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) tools/stage_status.py $(PROFILE)

test: setup
	HF_HUB_OFFLINE=1 MEDHE_TEST_TIMES=$(if $(RECORD),results/test_time.json,) $(PY) -m pytest -q

test-fast: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "not slow"

test-core: setup  # the suite without the Flower engine's tests
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "not flower"

# line coverage of src/medhe (pipeline subprocesses included) and an 85 % floor on the report modules
COVERAGE_FLOOR := src/medhe/report.py,src/medhe/results.py,src/medhe/ckks/table.py
coverage: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q --cov --cov-report=term:skip-covered --cov-report=json
	$(PY) -m coverage report --include='$(COVERAGE_FLOOR)' --fail-under=85

# one plausible bug per guarded number (tools/mutants.py): each must make its tests fail
mutants: setup
	HF_HUB_OFFLINE=1 $(PY) tools/mutants.py --out results/mutants.csv

bench: setup
	$(PY) benchmarks/bench_ckks.py

clean-venv:
	rm -rf $(VENV)
