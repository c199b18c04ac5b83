# The two commands of the README:
#   make repro   set up from nothing, then run the pipeline (quick profile, offline)
#   make test    set up from nothing, then run the tests
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PROFILE ?= quick
STAMP  := $(VENV)/.medhe-installed

.PHONY: setup repro test test-fast bench clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11) on PATH, or run: make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --user --name medhe --display-name "medhe (Python 3.11)" >/dev/null
	$(PY) -c "import medhe, torch, tenseal, transformers, dp_accounting; print('medhe environment ready:', torch.__version__)"
	touch $(STAMP)

repro: setup
	@test -f profiles/$(PROFILE).yaml || { echo "no profile '$(PROFILE)': choose one of $$(ls profiles | sed 's/.yaml//' | tr '\n' ' ')"; exit 1; }
	cp profiles/$(PROFILE).yaml params.yaml
	@# one DVC lock per profile (locks/<profile>.lock), so each profile resumes where it stopped
	@if [ -f locks/$(PROFILE).lock ]; then cp locks/$(PROFILE).lock dvc.lock; else rm -f dvc.lock; fi
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" HF_HUB_OFFLINE=1 dvc repro; status=$$?; \
	  mkdir -p locks; cp dvc.lock locks/$(PROFILE).lock; exit $$status

test: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

test-fast: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "not slow"

bench: setup
	$(PY) benchmarks/bench_ckks.py

clean-venv:
	rm -rf $(VENV)
