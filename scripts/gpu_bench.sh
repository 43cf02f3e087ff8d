#!/usr/bin/env bash
# The embedded engine on a lent GPU, in one go (issue 16), in under 10 minutes of device time (each step
# has its own time limit: 75 + 330 + 120 s, plus about 20 s to install the wheels):
#   1. the decode step at batch 1, 8, 32, 64: eager and CUDA-graph replay (scripts/gpu_decode_step.py);
#   2. rise bench: naive, raw (graphs on), raw-eager (graphs off), raw-spec, rise-serve and rise-serve-spec
#      (prompt-lookup speculation off / on) in the same rounds at
#      32 clients, then rise-serve at 64 and 128 clients (where throughput saturates);
#   3. the correctness test: graph replay == eager on a 64-problem load, == transformers' generate
#      (tests/engines/test_cuda_graphs_gpu.py).
# Writes $OUT/bench-gpu.json (and docs/results/bench-gpu.json there) with the device's name, and
# $OUT/gpu_bench.log. The GPU box has torch and transformers but no network and no FastAPI, pydantic,
# math-verify or SQLAlchemy: those travel as wheels in .whl/, made here first.
#
#   scripts/gpu_bench.sh --prepare   # here, with network: the wheels into .whl/ (Python 3.12, x86-64)
#   scripts/gpu_bench.sh             # there, through the device tool: carry [".whl"], OUT set
#   scripts/gpu_bench.sh --quick     # a dry run on this CPU with tiny sizes (OUT defaults to runs/gpu-bench-quick)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
MODE=${1:-gpu}
WHEELS="fastapi==0.136.3 starlette==1.10.0 pydantic==2.14.4 pydantic_core==2.50.5 pydantic-settings==2.16.3
  python-dotenv==1.2.4 typing-inspection==0.4.5 annotated-types==0.8.0 annotated-doc typing_extensions==4.16.0
  anyio==4.16.0 uvicorn==0.54.0 math-verify==0.9.0 latex2sympy2_extended==1.11.0 antlr4-python3-runtime==4.13.2
  SQLAlchemy==2.1.9 greenlet==3.5.6"

if [ "$MODE" = --prepare ]; then
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || grep -qx '/.whl/' .gitignore || echo /.whl/ >> .git/info/exclude
  mkdir -p .whl
  # shellcheck disable=SC2086
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_26_x86_64 -d .whl $WHEELS || exit 1
  ls .whl; du -sh .whl
  exit 0
fi

if [ "$MODE" = --quick ]; then  # the same steps on this CPU, tiny
  PY=${PY:-.venv/bin/python}; OUT=${OUT:-runs/gpu-bench-quick}; DEVICE=cpu
  STEP="--batch 1 8 --iters 5 --paths eager static"
  BENCH="--clients 4 --requests 8 --naive-requests 1 --rounds 2 --one-client-requests 1 --turns 2 --max-tokens 100
         --sweep-clients 4 8 --sweep-requests 8 --contenders naive raw raw-eager rise-serve"
  TESTS=tests/engines/test_cuda_graphs.py
else
  PY=${PY:-python3}; DEVICE=cuda
  : "${OUT:?OUT must name the folder whose files come back}"
  STEP="--batch 1 8 32 64 --iters 200 --paths eager graphs"
  BENCH="--clients 32 --requests 128 --naive-requests 6 --rounds 2 --one-client-requests 4 --max-batch-size 64
         --sweep-clients 64 128 --sweep-requests 192 --contenders naive raw raw-eager raw-spec rise-serve rise-serve-spec"
  TESTS=tests/engines/test_cuda_graphs_gpu.py
  if compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
  fi
fi
mkdir -p "$OUT"
LOG="$OUT/gpu_bench.log"
: > "$LOG"
step() { echo "== $* ($(date +%T))" | tee -a "$LOG"; }
run() { local limit=$1; shift; local t0=$SECONDS; timeout "$limit" "$@" 2>&1 | grep -v "Loading weights" | tee -a "$LOG" | tail -25
        echo "   ($((SECONDS - t0)) s)" | tee -a "$LOG"; }

step "environment"
[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$LOG"
$PY -c "import torch, transformers, fastapi, pydantic_settings, math_verify, sqlalchemy, uvicorn, app.api.main
print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())" 2>&1 \
  | tee -a "$LOG" | grep -q "^torch" || { echo "!! a package is missing (run scripts/gpu_bench.sh --prepare here and carry .whl)" | tee -a "$LOG"; exit 1; }

step "decode step"
# shellcheck disable=SC2086
run 75 $PY scripts/gpu_decode_step.py --device $DEVICE $STEP --out "$OUT/step.json"

step "rise bench"
# shellcheck disable=SC2086
run 330 $PY -m app.bench.cli --device $DEVICE $BENCH --out "$OUT/bench"

step "correctness"
run 120 env RISE_RECORD_DIR="$OUT" $PY -m pytest -q -rs -p no:cacheprovider "$TESTS"

step "bench-gpu.json"
$PY - "$OUT" <<'EOF' 2>&1 | tee -a "$LOG"
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def load(p):
    return json.loads(p.read_text()) if p.is_file() else None
bench, step, tests = load(out / "bench" / "bench.json"), load(out / "step.json"), load(out / "cuda-graphs-gpu.json")
device = (step or {}).get("device") or ((bench or {}).get("machine") or {}).get("gpu") or "cpu"
merged = {"device": device, "decode_step_ms": step, "bench": bench, "correctness": tests,
          "command": "scripts/gpu_bench.sh (through the device tool, carrying .whl)"}
text = json.dumps(merged, indent=2)
(out / "bench-gpu.json").write_text(text)
Path("docs/results").mkdir(parents=True, exist_ok=True)
if device != "cpu":
    Path("docs/results/bench-gpu.json").write_text(text)
print(f"wrote {out / 'bench-gpu.json'} ({device})")
EOF
rm -rf "$OUT/bench"  # merged into bench-gpu.json (and at most 8 files come back)
step "done"
