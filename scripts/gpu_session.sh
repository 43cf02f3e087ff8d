#!/usr/bin/env bash
# One lent-GPU session (run through the device tool, carrying .whl): `rise bench` with the embedded
# engine on the GPU, then RISE with the solver source (v3 settings) and the side-by-side evaluation
# of base, self-distilled candidate and solver-distilled models on 1,000 held-out problems x 2 seeds.
# Everything lands in $OUT (at most 8 files).
set -uo pipefail
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
PYV=$(python3 -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*-none-any.whl .whl/*-"$PYV"-*.whl
export PYTHONPATH=/tmp/site:$PWD
LOG="$OUT/gpu_session.log"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a "$LOG"

step() { echo "== $* ($(date +%T))" | tee -a "$LOG"; }

step bench
timeout 200 python3 -m app.bench.cli --device cuda --max-batch-size 64 --requests 256 --contenders naive raw rise-serve \
  --out "$OUT/bench-gpu" 2>&1 | grep -v "Loading weights" | tail -12 | tee -a "$LOG"

step rise-solver-v3
timeout 200 python3 -m app.training.cli rise --model models/base-synth --problems 600 --turns 2 --best-of 8 --epochs 2 \
  --lr 3e-5 --tau 0.2 --replay 0.5 --iterations 1 --source solver --eval-limit 0 --engine-batch 256 --device cuda \
  --out /tmp/rise-solver-v3 2>&1 | grep -v "Loading weights" | tr '\r' '\n' | grep -v "it/s\|s/it" | tail -8 | tee -a "$LOG"
if [ -d /tmp/rise-solver-v3 ]; then (cd /tmp && tar czf "$OUT/rise-solver-v3.tgz" rise-solver-v3); fi

mkdir -p /tmp/evals
for m in rise-solver-v3:/tmp/rise-solver-v3 base-synth:models/base-synth candidate:models/rise-synth-candidate; do
  name=${m%%:*}; path=${m#*:}
  [ -f "$path/config.json" ] || continue
  step "eval $name ($path)"
  timeout 150 python3 -m app.evaluation.cli --model "$path" --level expert --limit 1000 --turns 5 --seeds 0 1 \
    --batch-size 512 --concurrency 1024 --device cuda --no-progress --out "/tmp/evals/$name" 2>&1 | tail -3 | tee -a "$LOG"
done
(cd /tmp && tar czf "$OUT/evals-gpu.tgz" evals)
step done
