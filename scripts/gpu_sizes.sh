#!/usr/bin/env bash
# Issue 28, part 3: does RISE's no-oracle gain grow with model size? For each size of
# app/training/model_init.py (small ~1.9M, base ~4.9M, large ~19.5M parameters) the same recipe:
#   1. pretrain on the synthetic task as models/base-synth was, in its two stages, with fixed step counts
#      (PRE_STEPS at batch 256, lr 1e-3; then MIX_STEPS of the expert-heavy mix at lr 7e-4; base-synth's
#      own were 2,499 and 1,225, set by 4.5 and 2.4 minutes on an H100);
#   2. the inverse base as models/inverse-base was (INV_STEPS of `single check`, then half as many of
#      `single fix keep check`, medium and hard, batch 64, lr 3e-4; the committed base's were 500 and 250);
#   3. RISE and its same-data one-turn baseline from that base, evaluated beside it on validation
#      (scripts/train_inverse.sh with part 2's settings: hard problems, best-of-8, `--criterion better`).
# Every step is skipped where its output exists (runs/sizes/SIZE/...), so a second call continues the
# first. What comes back is one archive, $OUT/sizes.tgz: each size's evaluations and training records
# (no weights), and the log; scripts/size_gains.py makes the table and the plot from it, here.
#
#   scripts/gpu_bench.sh --prepare                 # here, with network: the wheels the GPU box lacks, into .whl/
#   STAGE=bases scripts/gpu_sizes.sh               # there (the device tool: carry [".whl"], OUT set): steps 1-2
#   STAGE=rise scripts/gpu_sizes.sh                # there, at once after (a warm machine keeps runs/): step 3
#   scripts/gpu_sizes.sh --quick                   # every step on this CPU with tiny counts (runs/sizes-quick;
#                                                  # SIZES=small: one size, about 10 minutes on 2 idle cores)
#   .venv/bin/python scripts/size_gains.py OUT/sizes.tgz   # here: the table and the plot (docs/results/)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
MODE=${1:-gpu}
STAGE=${STAGE:-all}  # bases | rise | all
SIZES=${SIZES:-small base large}

case "$MODE" in gpu|--quick) ;; *) echo "usage: scripts/gpu_sizes.sh [--quick] (not '$MODE')" >&2; exit 2 ;; esac
if [ "$MODE" = --quick ]; then  # the whole chain on this CPU, a few steps and problems each
  PY=${PY:-.venv/bin/python}; OUT=${OUT:-runs/sizes-quick}; ROOT=${ROOT:-runs/sizes-quick/work}; DEVICE=cpu
  PRE_STEPS=${PRE_STEPS:-2}; MIX_STEPS=${MIX_STEPS:-2}; INV_STEPS=${INV_STEPS:-2}; PRE_BATCH=8; INV_BATCH=8
  WORKERS=0; PROBLEMS=${PROBLEMS:-4}; BEST_OF=${BEST_OF:-2}; EVAL_LIMIT=${EVAL_LIMIT:-4}; EVAL_BATCH=16
else
  PY=${PY:-python3}; ROOT=${ROOT:-runs/sizes}; DEVICE=${DEVICE:-cuda}  # DEVICE=cpu: the full recipe here (many hours)
  : "${OUT:?OUT must name the folder whose files come back}"
  PRE_STEPS=${PRE_STEPS:-2499}; MIX_STEPS=${MIX_STEPS:-1225}; INV_STEPS=${INV_STEPS:-500}; PRE_BATCH=256; INV_BATCH=64
  WORKERS=${WORKERS:-12}; PROBLEMS=${PROBLEMS:-400}; BEST_OF=${BEST_OF:-8}; EVAL_LIMIT=${EVAL_LIMIT:-300}; EVAL_BATCH=512
  if compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
  fi
fi
[ "$INV_STEPS" -ge 2 ] 2>/dev/null || { echo "INV_STEPS must be 2 or more (the second inverse step is half of it)" >&2; exit 2; }
mkdir -p "$OUT" "$ROOT" || exit 1
LOG="$OUT/gpu_sizes.log"
touch "$LOG" || exit 1
say() { echo "== $* ($(date +%T))" | tee -a "$LOG"; }
rise() { $PY -m app.cli "$@" 2>&1 | grep -v "Loading weights\|Writing" | tail -3 | tee -a "$LOG"; return "${PIPESTATUS[0]}"; }
[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a "$LOG"
CHECK=$($PY -c "import torch, transformers, math_verify, app.training.rise, app.training.base, app.evaluation.cli
print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())" 2>&1)
echo "$CHECK" | tee -a "$LOG"
grep -q "^torch" <<< "$CHECK" || { echo "!! $PY cannot import what the recipe needs (above; on the GPU: scripts/gpu_bench.sh --prepare here, carry .whl)" | tee -a "$LOG"; exit 1; }

if [ "$STAGE" != rise ]; then
  for size in $SIZES; do
    d=$ROOT/$size
    [ -f "$d/base/model.safetensors" ] && { say "$size: its inverse base is there"; continue; }
    say "$size: pretrain ($PRE_STEPS steps), the expert mix ($MIX_STEPS), the inverse base ($INV_STEPS + $((INV_STEPS / 2)))"
    [ -f "$d/pre/model.safetensors" ] || rise train base --size "$size" --steps "$PRE_STEPS" --batch-size "$PRE_BATCH" \
      --lr 1e-3 --workers "$WORKERS" --device "$DEVICE" --seed 0 --out "$d/pre" || exit 1
    [ -f "$d/mix/model.safetensors" ] || rise train base --init "$d/pre" --levels easy medium hard expert expert expert \
      --steps "$MIX_STEPS" --batch-size "$PRE_BATCH" --lr 7e-4 --workers "$WORKERS" --device "$DEVICE" --seed 0 \
      --out "$d/mix" || exit 1
    [ -f "$d/inv-cmp/model.safetensors" ] || rise train base --init "$d/mix" --dataset inverse --shapes single check \
      --levels medium hard --steps "$INV_STEPS" --lr 3e-4 --batch-size "$INV_BATCH" --workers "$WORKERS" \
      --device "$DEVICE" --seed 0 --out "$d/inv-cmp" || exit 1
    [ -f "$d/base/model.safetensors" ] || rise train base --init "$d/inv-cmp" --dataset inverse \
      --shapes single fix keep check --levels medium hard --steps "$((INV_STEPS / 2))" --lr 3e-4 \
      --batch-size "$INV_BATCH" --workers "$WORKERS" --device "$DEVICE" --seed 0 --out "$d/base" || exit 1
  done
fi

if [ "$STAGE" != bases ]; then
  for size in $SIZES; do
    say "$size: RISE, the one-turn baseline, and the three evaluations"
    [ -f "$ROOT/$size/base/model.safetensors" ] || { echo "!! no $ROOT/$size/base: run STAGE=bases first" | tee -a "$LOG"; exit 1; }
    RISE_CMD="$PY -m app.cli" PY="$PY" LOCK=none TRAIN_ARGS="--device $DEVICE --engine-batch $EVAL_BATCH" \
      EVAL_ARGS="--device $DEVICE --batch-size $EVAL_BATCH" LEVEL=hard CRITERION=better PROBLEMS="$PROBLEMS" \
      BEST_OF="$BEST_OF" EVAL_LIMIT="$EVAL_LIMIT" TRAIN_EVAL="$EVAL_LIMIT" COMPUTE=0 LR="${LR:-1e-4}" EPOCHS="${EPOCHS:-2}" \
      scripts/train_inverse.sh "$ROOT/$size" 2>&1 | grep -v "Loading weights\|Writing" | tail -40 >> "$LOG" || exit 1
  done
fi

say "archive"
# each size's records (no weights): training.json and iterations.json of every step, each evaluation's metrics.json and per_problem.json
(cd "$ROOT" && find . \( -name training.json -o -name iterations.json -o -name metrics.json -o -name per_problem.json -o -name report.md \
  -o -name goals.md \) -print0 | tar czf - --null -T - ) > "$OUT/sizes.tgz" || { say "!! the archive failed"; exit 1; }
# and the inverse bases (bf16 weights: about 4, 10 and 39 MB), so that a later session can carry them back
# (extract into runs/sizes here, then carry ["runs/sizes", ".whl"]) instead of training them again
(cd "$ROOT" && find . -path "./*/base/*" -print0 | tar czf - --null -T - ) > "$OUT/bases.tgz" || { say "!! the bases' archive failed"; exit 1; }
ls -la "$OUT" | tee -a "$LOG"
say "done"
