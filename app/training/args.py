"""The arguments of `rise train base` and `rise train rise`, apart from the training code so that a bad
value is refused (exit 2, a message) in a fraction of a second, before torch is imported.

    rise train base --out models/base-synth --minutes 5 --device cuda
    rise train rise --model models/base-synth --out models/rise-synth --iterations 2
"""

from __future__ import annotations

import argparse

from app.cli_args import (model_dir, non_negative_float, non_negative_int, positive_float, positive_int, readable_file,
                          seed, share, temperature, writable_dir)
from app.tasks import synthetic
from app.training.collect import SOURCES


def base_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rise train base",
                                 description="Train a base model on synthetic problems in the refinement format.")
    ap.add_argument("--out", type=writable_dir, required=True)
    ap.add_argument("--size", choices=["tiny", "small", "base"], default="base")
    ap.add_argument("--steps", type=positive_int, default=2000)
    ap.add_argument("--minutes", type=positive_float, default=None, help="train for this wall-clock time instead of --steps")
    ap.add_argument("--lr", type=positive_float, default=1e-3)
    ap.add_argument("--batch-size", type=positive_int, default=64)
    ap.add_argument("--device", default=None)
    ap.add_argument("--workers", type=non_negative_int, default=1, help="data loader processes (0: in this one)")
    ap.add_argument("--seed", type=seed, default=0)
    ap.add_argument("--init", type=model_dir, default=None, help="continue from this checkpoint instead of a fresh model")
    ap.add_argument("--levels", nargs="+", choices=list(synthetic.LEVELS), default=None,
                    help="difficulty mix (repeat a name to weight it; default: every level once)")
    return ap


def parse_base(argv: list[str] | None) -> argparse.Namespace:
    return base_parser().parse_args(argv)


def rise_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rise train rise", description="RISE iterations: collect, fine-tune, evaluate.")
    ap.add_argument("--model", type=model_dir, required=True, help="the starting model (HF directory)")
    ap.add_argument("--out", type=writable_dir, required=True)
    ap.add_argument("--source", choices=SOURCES, default="self", help="where improved turns come from")
    ap.add_argument("--teacher", type=model_dir, default=None, help="teacher model directory (for --source teacher)")
    ap.add_argument("--from-traces", type=readable_file, default=None,
                    help="labelled served traffic (`rise traces export --labelled-only`) instead of generated problems: "
                         "its served turns are the first iteration's rollouts (app/training/from_traces.py)")
    ap.add_argument("--iterations", type=positive_int, default=2)
    ap.add_argument("--problems", type=positive_int, default=600, help="training problems per iteration")
    ap.add_argument("--level", nargs="+", choices=list(synthetic.LEVELS), default=["expert"],
                    help="the rollout problems' level, or a mix (repeat a name to weight it); --eval-limit uses the first")
    ap.add_argument("--turns", type=positive_int, default=3, help="rollout turns")
    ap.add_argument("--best-of", type=positive_int, default=16, help="N for self-distillation / teacher sampling")
    ap.add_argument("--temperature", type=temperature, default=1.0)
    ap.add_argument("--tau", type=positive_float, default=0.4)
    ap.add_argument("--epochs", type=positive_int, default=2)
    ap.add_argument("--lr", type=positive_float, default=1e-4)
    ap.add_argument("--batch-size", type=positive_int, default=32)
    ap.add_argument("--engine-batch", type=positive_int, default=64)
    ap.add_argument("--replay", type=non_negative_float, default=0.0,
                    help="add this many base-recipe conversations per collected example (all levels), "
                         "weighted like correct turns, to keep turn-1 skills from drifting")
    ap.add_argument("--replay-levels", nargs="+", choices=list(synthetic.LEVELS), default=None,
                    help="the replay's difficulty mix (repeat a name to weight it; default: every level once)")
    ap.add_argument("--anchor", type=non_negative_float, default=0.0,
                    help="replayed turns are trained to keep --anchor-model's next-token distribution (this weight "
                         "times the KL to it) instead of imitating the solver's text (0: imitate)")
    ap.add_argument("--anchor-model", type=model_dir, default=None,
                    help="the frozen model --anchor keeps close to (default: --model)")
    ap.add_argument("--later", type=non_negative_float, default=0.0,
                    help="recheck: extra conversations per problem whose attempt is itself a re-check (turns 3+)")
    ap.add_argument("--later-wrong", type=share, default=0.4,
                    help="recheck: the share of those extra re-checks that carry a slip to fix")
    ap.add_argument("--solver-attempts", type=non_negative_float, default=0.0,
                    help="recheck: this many conversations per problem on fresh problems whose attempt the solver "
                         "writes (no rollout), to teach the re-check format in the first iteration")
    ap.add_argument("--solver-levels", nargs="+", choices=list(synthetic.LEVELS), default=None,
                    help="recheck: the levels of the solver-written conversations (default: --level); a re-check "
                         "splits only products by two-digit numbers, so other levels teach it to keep the rest")
    ap.add_argument("--solver-right", type=share, default=0.6,
                    help="recheck: the share of solver-written attempts that are right (the rest carry one slip)")
    ap.add_argument("--eval-limit", type=non_negative_int, default=0, help="held-out problems to evaluate after each iteration (0: skip)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--seed", type=seed, default=0)
    return ap


def parse_rise(argv: list[str] | None) -> argparse.Namespace:
    ap = rise_parser()
    a = ap.parse_args(argv)
    if a.source == "teacher" and a.teacher is None:
        ap.error("--source teacher needs --teacher PATH")
    if a.from_traces is not None:
        _check_traces(ap, a)
    return a


def _check_traces(ap: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    from app.training.from_traces import TracesError, load_traces

    if a.source not in ("self", "teacher"):
        ap.error("--from-traces takes --source self or teacher (the other sources need generated problems)")
    try:
        labelled = load_traces(a.from_traces)
    except (TracesError, OSError, UnicodeDecodeError) as e:
        ap.error(f"--from-traces: {e}")
    if not labelled:
        ap.error(f"--from-traces: {a.from_traces} holds no labelled trace (a rating or a reference); export with "
                 "`rise traces export --labelled-only` after feedback")
