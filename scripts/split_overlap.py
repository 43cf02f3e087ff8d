"""How much of an evaluation set the shipped models' training could have seen, by structure.

The shipped `base-synth` and `rise-synth` were trained before the structure split: their training
problems were drawn from the *wording* split (`synthetic.split_of_text`), so the same arithmetic
(start value and operations) under other names could be drawn for training and for a held-out set.
This script regenerates every problem those trainings drew, from their seeds and with the same rng
sequence, and counts the evaluation problems whose structure is among them:

- base-synth stage 1 and 2 (`app/training/base.py`, `BaseStream`): per DataLoader worker w of 12
  (`scripts/gpu_base.sh`, `scripts/gpu_expert.sh`) an rng seeded `seed * 1000 + w`; each draw is a
  problem (rejection on the text split) then `base_conversation`, which draws the conversation's
  shape and wrong attempts from the same rng; conversations over 512 tokens (the base-synth
  tokenizer) are skipped. The loader takes batches of 256 from the workers in turn, so worker w
  gave the first 256 x len(range(w, steps, 12)) conversations of its stream to the `steps` trained
  steps (`training_stage*.json`). Stage 1 ran before the `expert` level existed: easy, medium, hard.
- rise-synth (`models/rise-synth/iterations.json`, `app/training/rise.py` at commit 95ca43b): on
  top of base-synth, 600 expert problems from `random.Random(0)` for collection, then
  int(0.5 x 1,086 examples) = 543 replay conversations from the same rng over all levels.

Issue 14's audit counted 48 / 127 / 582 (expert / medium / easy) of the old test set; it assumed
stage 1 drew from all four of today's levels (the recipe's default now). Stage 1 ran before the
expert level existed (its training_stage1.json records no levels), so the counts as trained differ;
`audit_variant` in the output recomputes the audit's assumption to show where the gap comes from.

    flock /tmp/rise-heavy.lock .venv/bin/python scripts/split_overlap.py --limit 1000 --out docs/results/split-overlap.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.tasks import synthetic  # noqa: E402
from app.tasks.datasets import default_problem_seed  # noqa: E402
from app.training.base import base_conversation  # noqa: E402

WORKERS = 12  # --workers of scripts/gpu_base.sh and scripts/gpu_expert.sh
BATCH = 256
MAX_LEN = 512  # BaseStream's default
STAGE_LEVELS = {1: ["easy", "medium", "hard"], 2: ["easy", "medium", "hard", "expert", "expert", "expert"]}
RISE_PROBLEMS, RISE_REPLAY, RISE_SEED = 600, 543, 0


def old_generate(rng: random.Random, difficulty: synthetic.Difficulty, split: str = "train") -> synthetic.Problem:
    """`synthetic.generate` as it was when the shipped models were trained: rejection on the text split."""
    while True:
        problem = synthetic._draw(rng, difficulty)
        if synthetic.split_of_text(problem.question) == split:
            return problem


def key(problem: synthetic.Problem) -> str:
    return synthetic.structure(problem.start, problem.ops)


def base_stage(stage: int, tokenizer, level_names: list[str] | None = None) -> tuple[set[str], dict]:
    """Every structure the base recipe trained on in `stage`, with counts (`level_names`: another mix)."""
    info = json.loads((ROOT / "models" / "base-synth" / f"training_stage{stage}.json").read_text())
    steps, seed = info["train"]["steps"], info["seed"]
    assert info["batch_size"] == BATCH, info["batch_size"]
    level_names = level_names or info.get("levels", STAGE_LEVELS[stage])
    levels = [synthetic.LEVELS[name] for name in level_names]
    seen: set[str] = set()
    conversations = skipped = 0
    for w in range(WORKERS):
        rng = random.Random(seed * 1000 + w)
        want = BATCH * len(range(w, steps, WORKERS))
        got = 0
        while got < want:
            problem = old_generate(rng, rng.choice(levels))
            msgs, _ = base_conversation(rng, problem)
            if _too_long(msgs, tokenizer):
                skipped += 1
                continue
            seen.add(key(problem))
            got += 1
        conversations += got
    return seen, {"steps": steps, "batch_size": BATCH, "workers": WORKERS, "seed": seed,
                  "levels": level_names, "conversations": conversations,
                  "skipped_over_512_tokens": skipped, "distinct_structures": len(seen)}


def rise_problems() -> tuple[set[str], dict]:
    rng = random.Random(RISE_SEED)
    collected = [old_generate(rng, synthetic.LEVELS["expert"]) for _ in range(RISE_PROBLEMS)]
    levels = list(synthetic.LEVELS.values())
    replay = []
    for _ in range(RISE_REPLAY):
        problem = old_generate(rng, rng.choice(levels))
        base_conversation(rng, problem)
        replay.append(problem)
    seen = {key(p) for p in collected + replay}
    return seen, {"collection_problems": RISE_PROBLEMS, "replay_conversations": RISE_REPLAY, "seed": RISE_SEED,
                  "distinct_structures": len(seen)}


def _too_long(msgs: list[dict], tokenizer) -> bool:
    """encode_example's length > MAX_LEN (a role token and an end token around each message); a
    token holds at least one character, so short conversations are not encoded."""
    if sum(len(m["content"]) + 2 for m in msgs) <= MAX_LEN:
        return False
    return sum(len(tokenizer(m["content"], add_special_tokens=False)["input_ids"]) + 2 for m in msgs) > MAX_LEN


def overlap(problems: list[synthetic.Problem], base_seen: set[str], rise_seen: set[str]) -> dict:
    keys = [key(p) for p in problems]
    return {"problems": len(keys), "distinct_structures": len(set(keys)),
            "seen_by_base_synth": sum(k in base_seen for k in keys),
            "seen_by_rise_synth": sum(k in base_seen or k in rise_seen for k in keys)}


def old_test(seed: int, count: int, difficulty: synthetic.Difficulty) -> list[synthetic.Problem]:
    rng = random.Random(seed)
    return [old_generate(rng, difficulty, "test") for _ in range(count)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=1000, help="the first N problems of each evaluation set")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "split-overlap.json")
    a = ap.parse_args(argv)
    from transformers import AutoTokenizer

    started = time.monotonic()
    tokenizer = AutoTokenizer.from_pretrained(ROOT / "models" / "base-synth")
    seen1, info1 = base_stage(1, tokenizer)
    seen2, info2 = base_stage(2, tokenizer)
    base_seen = seen1 | seen2
    rise_seen, rise_info = rise_problems()
    sets = {
        "old test (wording split, problem seed 1234): what the cards report": lambda d: old_test(1234, a.limit, d),
        "test (structure split, problem seed 1234)": lambda d: synthetic.problems(default_problem_seed("test"), a.limit, d, "test"),
        "validation (structure split, problem seed 4321)": lambda d: synthetic.problems(
            default_problem_seed("validation"), a.limit, d, "validation"),
    }
    result = {
        "command": f"flock /tmp/rise-heavy.lock .venv/bin/python scripts/split_overlap.py --limit {a.limit} "
                   f"--out {a.out.relative_to(ROOT) if a.out.is_absolute() and ROOT in a.out.parents else a.out}",
        "what": "evaluation problems whose structure (start value and operations) the shipped models' training "
                "drew; base-synth: both base stages; rise-synth: those plus its RISE collection and replay problems",
        "training": {"base-synth stage 1": info1, "base-synth stage 2": info2,
                     "base-synth distinct structures": len(base_seen), "rise-synth (on top of base-synth)": rise_info},
        "sets": {name: {level: overlap(make(d), base_seen, rise_seen) for level, d in synthetic.LEVELS.items()}
                 for name, make in sets.items()},
        "seconds": 0.0,
    }
    variant_seen = base_stage(1, tokenizer, list(synthetic.LEVELS))[0] | seen2
    result["audit_variant"] = {
        "assumption": "stage 1 over all four of today's levels (not as trained: expert did not exist yet)",
        "old test (wording split, problem seed 1234)": {level: overlap(old_test(1234, a.limit, d), variant_seen, set())
                                                        for level, d in synthetic.LEVELS.items()}}
    result["seconds"] = round(time.monotonic() - started, 1)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, levels in result["sets"].items():
        print(name)
        for level, o in levels.items():
            print(f"  {level:>6}: {o['seen_by_base_synth']:4d} of {o['problems']} seen by base-synth "
                  f"({o['seen_by_rise_synth']} by rise-synth), {o['distinct_structures']} distinct structures")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
