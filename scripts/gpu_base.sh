#!/usr/bin/env bash
# Train the shipped base model on the lent GPU and evaluate it; everything comes back in $OUT.
# Run through the device tool (carry .whl: math-verify and its pure-Python needs).
set -euo pipefail
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi -L; python3 -c "import torch, transformers; print(torch.__version__, transformers.__version__)"
MIN=${MIN:-4.5}
python3 -m app.training.base --out "$OUT/base" --size base --minutes "$MIN" --batch-size 256 --workers 12 \
  --lr 1e-3 --device cuda 2>&1 | grep -v "Writing\|Loading" | tail -3
for lvl in easy medium hard; do
  python3 -m app.evaluation.cli --model "$OUT/base" --level "$lvl" --limit 500 --seeds 0 --turns 5 \
    --batch-size 512 --device cuda --out "$OUT/eval-$lvl" --no-progress 2>&1 | grep -E "p1@|m1@|m5@|pass@1:" | tr '\n' ' '
  echo " <- $lvl"
done
python3 -m app.evaluation.cli --model "$OUT/base" --level medium --limit 500 --seeds 0 --turns 5 --temperature 0 \
  --batch-size 512 --device cuda --out "$OUT/eval-medium-greedy" --no-progress 2>&1 | grep -E "p1@|m1@" | tr '\n' ' '
echo " <- medium greedy"
cd "$OUT" && tar czf result.tgz base eval-* && rm -rf base eval-* && ls -la
