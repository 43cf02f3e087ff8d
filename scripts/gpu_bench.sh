#!/usr/bin/env bash
# `rise bench` with the embedded engine on the lent GPU (run through the device tool, carrying
# .whl): naive loop, raw engine and rise-serve over HTTP; $OUT/bench-gpu/bench.json (written after
# each contender) and the log come back.
set -uo pipefail
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
PYV=$(python3 -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*-none-any.whl .whl/*-"$PYV"-*.whl
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name --format=csv,noheader
timeout "${BENCH_TIMEOUT:-170}" python3 -m app.bench.cli --device cuda --max-batch-size 64 --clients 32 \
  --requests "${REQUESTS:-64}" --naive-requests 4 --one-client-requests 4 --contenders naive raw rise-serve \
  --out "$OUT/bench-gpu" 2>&1 | grep -v "Loading weights" | tail -12
