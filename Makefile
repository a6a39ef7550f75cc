# Two commands on a fresh machine:  `make book`  and  `make test`.
# PROFILE=paper make book   rebuilds every result at the papers' statistics (hours).
PROFILE ?= ci
JOBS ?= 1
PY := .venv/bin/python
VENV_STAMP := .venv/.installed

.PHONY: book test lint bench venv clean

venv: $(VENV_STAMP)

# (Re)create the virtual environment when the pinned requirements change.
$(VENV_STAMP): requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

book: $(VENV_STAMP)
	$(PY) -m qftml book --profile $(PROFILE) --jobs $(JOBS)

test: $(VENV_STAMP)
	$(PY) -m pytest -q

lint: $(VENV_STAMP)
	$(PY) -m ruff check src tests notebooks benchmarks book/_ext
	$(PY) -m ruff format --check src tests notebooks benchmarks book/_ext

bench: $(VENV_STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf _build notebooks/*.ipynb
