#!/usr/bin/env bash
# Issue 28, part 2: self-improvement where checking is easier than solving, on the inverse task family
# (app/tasks/inverse.py: the end of a chain is given and its start asked; its worked solution undoes the
# chain, then checks the answer by running the chain forward). Every step works on the validation split;
# the test split is for the final card (the commands at the end, not run here).
#
#   1. base: base-synth fine-tuned on inverse problems, first turns only (question -> the solver's
#      solution with its forward check), `rise train base --dataset inverse --shapes single`, a fixed
#      number of steps (500 x 64 conversations, about 25 minutes on 2 cores; a step count, not a time,
#      so that a busy or paused machine trains the same model);
#   2. rise: RISE's general path from it, `--source self` best-of-N (oracle feedback while collecting;
#      no solver-written or re-check targets), ITERATIONS iterations;
#   3. rft: the same-data one-turn baseline, rejection-sampling fine-tuning from the same base: the same
#      problems (the inverse pool is fixed by --problems, --iterations and the level), the same replay and
#      anchor, and as many of the model's right samples as RISE trained on (`--single-turn --max-examples`);
#   4. rise eval of all three (1,000 validation problems x 2 seeds, 5 turns) and `--compute` for the
#      accuracy-against-tokens plot, then the paired comparison.
#
#   scripts/train_inverse.sh runs/inv                       # LEVEL, PROBLEMS, ITERATIONS, BASE_STEPS, EVAL_LIMIT, COMPUTE
#   LEVEL=hard BASE_LEVEL=medium PROBLEMS=1000 EVAL_LIMIT=300 scripts/train_inverse.sh runs/inv-hard
#   LR=3e-5 EPOCHS=1 ...                                    # the gentler fine-tune (docs/results/inverse-pilot.md)
#
# BASE_LEVEL (default LEVEL) is the level the first-turn fine-tune trains on: a base fine-tuned on medium
# problems solves 100% of medium validation problems at turn 1 (no room for a later turn) and 20% of hard
# ones, so the hard run starts from the medium base (an existing OUT/base is reused, not retrained).
# BASE_LEVEL and BASE_SHAPES (default single) may each name several, space-separated: the base of the
# written-comparison check is BASE_LEVEL="medium hard" BASE_SHAPES="single check", so that it also learns
# the honest check of a wrong attempt. CRITERION (default all) is `rise train rise --criterion`.
#
# models/inverse-base is the single-fix-keep-check base of docs/results/inverse-pilot.md, committed:
#   mkdir -p OUT && cp -r models/inverse-base OUT/base   # then LEVEL=hard BASE_LEVEL="medium hard" ... OUT
# About 4 hours on 2 quiet CPU cores with the defaults (docs/training.md#the-inverse-task); each heavy step
# takes /tmp/rise-heavy.lock, so it waits for (and never runs beside) other heavy jobs on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:?usage: scripts/train_inverse.sh OUT_DIR}
LEVEL=${LEVEL:-medium}
BASE_LEVEL=${BASE_LEVEL:-$LEVEL}
BASE_SHAPES=${BASE_SHAPES:-single}
CRITERION=${CRITERION:-all}
PROBLEMS=${PROBLEMS:-2000}
ITERATIONS=${ITERATIONS:-1}
BASE_STEPS=${BASE_STEPS:-500}
BEST_OF=${BEST_OF:-16}
EVAL_LIMIT=${EVAL_LIMIT:-1000}
SEED=${SEED:-0}
LR=${LR:-1e-4}          # RISE's and the baseline's fine-tune (both the same): lr 3e-5 for one epoch keeps turn 1 better
EPOCHS=${EPOCHS:-2}
TRAIN_EVAL=${TRAIN_EVAL:-300}  # validation problems of `rise train rise`'s own evaluation after its iteration
COMPUTE=${COMPUTE:-1}  # 0: skip the `rise eval --compute` runs (the accuracy-against-tokens plots), about half the eval time
# the command and the extra arguments where the repo's .venv is not what runs it (scripts/gpu_sizes.sh on a GPU)
PY=${PY:-.venv/bin/python}
read -ra RISE <<< "${RISE_CMD:-.venv/bin/rise}"
read -ra TRAIN_ARGS <<< "${TRAIN_ARGS:-}"  # e.g. "--device cuda --engine-batch 512" (rise train rise); split on
#                                            spaces, no quoting (so are RISE_CMD and EVAL_ARGS)
read -ra EVAL_ARGS <<< "${EVAL_ARGS:-}"    # e.g. "--device cuda --batch-size 512" (rise eval)
LOCK=${LOCK:-/tmp/rise-heavy.lock}         # none: no lock (a machine of its own)
[ "$LOCK" = none ] || RISE=(flock "$LOCK" "${RISE[@]}")
mkdir -p "$OUT"

# 1. the first-turn fine-tune (its level mix: the inverse LEVEL, with the forward arithmetic in every check)
# shellcheck disable=SC2086  # BASE_SHAPES and BASE_LEVEL are split into words on purpose
[ -f "$OUT/base/model.safetensors" ] || "${RISE[@]}" train base --init models/base-synth --dataset inverse \
  --shapes $BASE_SHAPES --levels $BASE_LEVEL --steps "$BASE_STEPS" --lr 3e-4 --batch-size 64 --workers 1 --seed "$SEED" \
  --out "$OUT/base"

# 2. RISE, the general path; 3. the one-turn baseline on the same problems with the same replay and anchor
COMMON=(--dataset inverse --recipe "{\"level\": [\"$LEVEL\"]}" --problems "$PROBLEMS" --iterations "$ITERATIONS"
        --temperature 1.0 --max-tokens 200 --epochs "$EPOCHS" --lr "$LR" --tau 0.4 --replay 0.5 --anchor 10
        --anchor-model "$OUT/base" --eval-limit "$TRAIN_EVAL" --seed "$SEED")
[ -f "$OUT/rise/model.safetensors" ] || "${RISE[@]}" train rise --model "$OUT/base" --out "$OUT/rise" \
  --source self --best-of "$BEST_OF" --criterion "$CRITERION" --turns 3 "${COMMON[@]}" "${TRAIN_ARGS[@]}"
# the model's right samples RISE trained on in its first iteration: right turns kept, plus right best-of-N samples
RIGHT=$("$PY" -c "import json, sys; c = json.load(open(sys.argv[1]))[0]['collect']; \
print(c['kept_correct'] + c['improved'])" "$OUT/rise/iterations.json")
echo "RISE trained on $RIGHT right samples of the model; the baseline gets as many"
[ -f "$OUT/rft/model.safetensors" ] || "${RISE[@]}" train rise --model "$OUT/base" --out "$OUT/rft" \
  --source self --single-turn --best-of "$BEST_OF" --max-examples "$RIGHT" --turns 1 "${COMMON[@]}" "${TRAIN_ARGS[@]}"

# 4. the card's protocol on validation, and accuracy against tokens
for m in base rise rft; do
  EVAL=(--model "$OUT/$m" --dataset inverse --level "$LEVEL" --split validation --limit "$EVAL_LIMIT" --turns 5
        --seeds 0 1 --max-tokens 200 --no-progress "${EVAL_ARGS[@]}")
  [ -f "$OUT/eval-$m/metrics.json" ] || "${RISE[@]}" eval "${EVAL[@]}" --out "$OUT/eval-$m"
  [ "$COMPUTE" = 0 ] || [ -f "$OUT/compute-$m/compute.json" ] || "${RISE[@]}" eval --compute "${EVAL[@]}" --out "$OUT/compute-$m"
done
"$PY" -m app.evaluation.report "$OUT/eval-rise/metrics.json" "$OUT/eval-rft/metrics.json" \
  "$OUT/eval-base/metrics.json" | tee "$OUT/report.md"
"$PY" scripts/inverse_goals.py "$OUT/eval-rise" "$OUT/eval-rft" "$OUT/eval-base" | tee "$OUT/goals.md"

# The final card (test split, after the settings are chosen here), e.g.:
#   rise eval --model OUT/rise --dataset inverse --level LEVEL --split test --limit 1000 --turns 5 --seeds 0 1 --out ...
