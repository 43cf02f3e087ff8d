#!/usr/bin/env bash
# The whole RISE recipe on this CPU: two improvement sources, then the model-card evaluations
# (1,000 held-out expert problems, 5 turns, 2 seeds) of the base and both RISE models.
set -euo pipefail
COMMON="--model models/base-synth --problems 600 --turns 2 --best-of 8 --epochs 2 --lr 1e-4 --tau 0.2 --iterations 2"
rise train rise $COMMON --source self   --out runs/rise-self   > runs/rise-self.log 2>&1
rise train rise $COMMON --source solver --out runs/rise-solver > runs/rise-solver.log 2>&1
for m in base-synth:models/base-synth rise-self:runs/rise-self rise-solver:runs/rise-solver; do
  rise eval --model "${m#*:}" --level expert --limit 1000 --turns 5 --seeds 0 1 --out "runs/eval-${m%%:*}" \
    --no-progress > "runs/eval-${m%%:*}.log" 2>&1
done
