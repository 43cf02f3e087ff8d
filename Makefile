# rise-serve: the two commands are `make run` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install venv clean system-deps

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv install: $(STAMP)

run: $(STAMP)
	$(BIN)/rise serve --host $(HOST) --port $(PORT)

# System packages the tests use: a real Prometheus (skipped loudly by the tests where missing).
system-deps:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || \
	  { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null) \
	    || echo "!!! could not install Prometheus: its tests will be SKIPPED"; }

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q -rs tests

clean:
	rm -rf $(VENV) .pytest_cache
