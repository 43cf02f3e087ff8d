"""The synthetic task's own training recipe: its problem levels, its replay (the base recipe's
conversations), and the re-check source (`--source recheck`) with its knobs. These apply to the
synthetic dataset only, so they are a recipe (`--recipe JSON-or-FILE`), not flags of
`rise train rise`:

    rise train rise --dataset synthetic --source recheck --recipe '{"level": ["expert"], "later": 0.3,
        "solver_attempts": 1, "replay_levels": ["easy", "medium", "hard", "expert"]}' ...

- `level`: the rollout problems' level, or a mix (repeat a name to weight it); `--eval-limit` uses the first.
  `--dataset inverse` (`app/tasks/inverse.py`) takes this knob only: its pool's levels (`inverse_set`).
- `replay_levels`: the replay's difficulty mix (default every level once).
- `later` (recheck): extra conversations per problem whose attempt is itself a re-check (turns 3+);
  `later_wrong`: the share of those that carry a slip to fix.
- `solver_attempts` (recheck): conversations per problem on fresh problems whose attempt the solver
  writes (no rollout); `solver_levels` their levels (default `level`); `solver_right` the share of
  those attempts that are right (the rest carry one slip).

The re-check source: the model rolls out with RISE's evaluation feedback ("incorrect" after every
turn, as served without an oracle), and after *every* turn, right or wrong, the solver writes the
re-check turn (`app/tasks/recheck.py`): verify each step, keep what is right, fix the first wrong
step. The attempt is context only (weight 0): it was sampled at temperature 1, and imitating it
taught turn 1 the model's own slips.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.engines.base import SamplingParams
from app.refine.feedback import DEFAULT_FEEDBACK, render_feedback
from app.refine.loop import refine
from app.refine.types import RefineConfig
from app.tasks import inverse, synthetic
from app.tasks.recheck import corrupt_recheck, recheck
from app.training.criteria import reward, weight

Level = Literal["easy", "medium", "hard", "expert"]
Example = tuple[list[dict], list[float]]


class SyntheticRecipe(BaseModel):
    """The synthetic task's knobs (unknown keys are refused: a typo is not silently ignored)."""

    model_config = ConfigDict(extra="forbid")
    level: list[Level] = Field(default_factory=lambda: ["expert"], min_length=1)
    replay_levels: list[Level] | None = Field(None, min_length=1)
    later: float = Field(0.0, ge=0)
    later_wrong: float = Field(0.4, ge=0, le=1)
    solver_attempts: float = Field(0.0, ge=0)
    solver_levels: list[Level] | None = Field(None, min_length=1)
    solver_right: float = Field(0.6, ge=0, le=1)


def load_recipe(value: str | None) -> SyntheticRecipe:
    """A recipe from inline JSON (starting with `{`) or a JSON file; ValueError naming the bad key."""
    if value is None:
        return SyntheticRecipe()
    try:
        text = value if value.lstrip().startswith("{") else Path(value).read_text(encoding="utf-8")
        return SyntheticRecipe.model_validate(json.loads(text))
    except OSError as e:
        raise ValueError(f"{value}: cannot be read ({e.strerror or e})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON ({e})") from None
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "recipe"
        raise ValueError(f"{where}: {first['msg']}") from None


def draw(rng: random.Random, count: int, recipe: SyntheticRecipe) -> list[synthetic.Problem]:
    """`count` training problems of the recipe's levels (one level: the rng draws as it always did)."""
    levels = recipe.level
    return [synthetic.generate(rng, synthetic.LEVELS[levels[0] if len(levels) == 1 else rng.choice(levels)], "train")
            for _ in range(count)]


def inverse_set(recipe: SyntheticRecipe, count: int, split: str) -> list[inverse.Problem]:
    """`count` inverse problems (`--dataset inverse`) of the recipe's levels from `split`, drawn from the
    split's default problem seed: the same pool for every run with the same count and levels (the RISE
    run and its one-turn baseline train on the same problems). One level and `validation` give the
    problems of `rise eval --dataset inverse --split validation --level L`."""
    from app.tasks.datasets import default_problem_seed

    rng, levels = random.Random(default_problem_seed(split)), recipe.level
    return [inverse.generate(rng, inverse.LEVELS[levels[0] if len(levels) == 1 else rng.choice(levels)], split)
            for _ in range(count)]


def eval_problems(limit: int, recipe: SyntheticRecipe) -> list[synthetic.Problem]:
    """The held-out slice: validation problems of the first level (never the test split: settings
    are chosen here; model cards use `rise eval` on the test split)."""
    return synthetic.problems(4321, limit, synthetic.LEVELS[recipe.level[0]], "validation")


def replay(rng: random.Random, count: int, scale: float, single: bool, recipe: SyntheticRecipe) -> list[Example]:
    """Base-recipe conversations over the recipe's replay levels (the solver's solutions), weights
    scaled to match a right RISE turn; `single`: the question and its solution only."""
    from app.training.base import base_conversation

    levels = [synthetic.LEVELS[name] for name in (recipe.replay_levels or list(synthetic.LEVELS))]
    out = []
    for _ in range(count):
        p = synthetic.generate(rng, rng.choice(levels), "train")
        msgs, w = base_conversation(rng, p) if not single else (
            [{"role": "user", "content": p.question}, {"role": "assistant", "content": p.solution}], [0.0, 1.0])
        out.append((msgs, [x * scale for x in w]))
    return out


def solver_written(rng: random.Random, problems: int, recipe: SyntheticRecipe, tau: float) -> list[Example]:
    """`solver_attempts` re-check conversations per problem, a share per level named, no rollout."""
    if not recipe.solver_attempts:
        return []
    levels = recipe.solver_levels or recipe.level
    out: list[Example] = []
    for name in levels:
        out += synthetic_recheck(rng, int(recipe.solver_attempts * problems / len(levels)), synthetic.LEVELS[name],
                                 recipe.solver_right, tau)
    return out


def as_one_turn(example: Example) -> Example:
    """A re-check conversation (question, attempt, feedback, re-check) as the one-turn baseline's
    question -> re-check, with the re-check's weight."""
    (msgs, w) = example
    return [msgs[0], msgs[-1]], [0.0, w[-1]]


async def collect_recheck(engine, p: synthetic.Problem, checker, cfg, stats, seed: int) -> list[Example]:
    """Self-mode rollouts (no oracle); after every turn the solver's re-check of that turn.

    `cfg.single_turn` (`--single-turn`, the same-data one-turn baseline): as many examples, each the
    question -> the same re-check text (no attempt, no feedback), and no rollout, since an attempt
    is only context and a re-check is the same whatever the attempt said."""
    hi = weight(1, cfg.tau)
    if cfg.single_turn:
        attempts = [""] * cfg.turns  # dropped by as_one_turn below
        stats.turns += cfg.turns
    else:
        attempts = await _rollout(engine, p, checker, cfg, stats, seed)
    examples = [recheck_conversation(p, attempt, hi) for attempt in attempts]
    stats.improved += len(attempts)
    rng = random.Random(seed)
    extra = int(cfg.later) + (rng.random() < cfg.later - int(cfg.later))
    for _ in range(extra):
        examples.append(recheck_conversation(p, corrupt_recheck(p, rng) if rng.random() < cfg.later_wrong else recheck(p), hi))
    for _ in examples:
        stats.count([1])  # each a right target after a context-only attempt
    return [as_one_turn(e) for e in examples] if cfg.single_turn else examples


async def _rollout(engine, p: synthetic.Problem, checker, cfg, stats, seed: int) -> list[str]:
    """The model's turns on `p` without an oracle, counted into `stats` (each turn's reward, the flow)."""
    sampling = SamplingParams(temperature=cfg.temperature, max_tokens=cfg.max_tokens, seed=seed)
    run = await refine(engine, p.question, checker, RefineConfig(max_turns=cfg.turns, window="last", sampling=sampling))
    rewards = [reward(checker, t.text, p.answer) for t in run.turns]
    stats.turns += len(run.turns)
    for k, r in enumerate(rewards, start=1):
        stats.by_turn_correct[f"t{k}"] = stats.by_turn_correct.get(f"t{k}", 0) + int(r == 1)
        if k > 1:
            flow = stats.flips.setdefault(f"t{k - 1}>t{k}", {"right_to_wrong": 0, "wrong_to_right": 0})
            flow["right_to_wrong"] += int(rewards[k - 2] == 1 and r != 1)
            flow["wrong_to_right"] += int(rewards[k - 2] != 1 and r == 1)
    stats.turn1_correct += int(rewards[0] == 1)
    stats.kept_correct += sum(r == 1 for r in rewards)
    stats.wrong_turns += sum(r != 1 for r in rewards)
    return [t.text for t in run.turns]


def recheck_conversation(p: synthetic.Problem, attempt: str, hi: float) -> Example:
    """The question, an attempt (context only), RISE's "incorrect" feedback, the solver's re-check
    (the same whatever the attempt said) weighted `hi`."""
    return ([{"role": "user", "content": p.question}, {"role": "assistant", "content": attempt},
             {"role": "user", "content": render_feedback(DEFAULT_FEEDBACK, p.question)},
             {"role": "assistant", "content": recheck(p)}], [0.0, 0.0, 0.0, hi])


def synthetic_recheck(rng: random.Random, count: int, level: synthetic.Difficulty, right: float,
                      tau: float) -> list[Example]:
    """`count` re-check conversations on fresh training problems, no rollout: the attempt is the
    solver's solution (a share `right` of them) or the solution with one slip (`synthetic.corrupt`)."""
    out, hi = [], weight(1, tau)
    for _ in range(count):
        p = synthetic.generate(rng, level, "train")
        out.append(recheck_conversation(p, p.solution if rng.random() < right else synthetic.corrupt(p, rng), hi))
    return out
