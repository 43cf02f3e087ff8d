#!/usr/bin/env bash
# Continue the base model on a mix that adds the "expert" level (two-digit products), on the lent
# GPU; the checkpoint comes back in $OUT/result.tgz. Run through the device tool (carry .whl).
set -euo pipefail
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD
MIN=${MIN:-2.4}
python3 -m app.training.base --out "$OUT/base" --init models/base-synth --levels easy medium hard expert expert expert \
  --minutes "$MIN" --batch-size 256 --workers 12 --lr 7e-4 --device cuda 2>&1 | grep -v "Writing\|Loading" | tail -2
(cd "$OUT" && tar czf result.tgz base && rm -rf base)
mkdir -p /tmp/m && tar xzf "$OUT/result.tgz" -C /tmp/m
timeout 40 python3 -m app.evaluation.cli --model /tmp/m/base --level expert --limit 200 --seeds 0 --turns 1 \
  --temperature 0 --batch-size 512 --device cuda --out "$OUT/eval" --no-progress 2>&1 | grep -E "p1@t1" || true
