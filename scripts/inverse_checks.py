"""Issue 28, part 2: is a model's forward check honest? On the inverse task a written solution ends with
"Check: ..." (the chain run forward from its answer), the comparison it writes out and its verdict ("89 vs 93: no
match.", or "93 vs 93: match."; bases of an earlier format wrote "It matches." or "It does not match N.").
Self-correction without an oracle needs that verdict to be true. This samples a model on validation problems and
counts, per sample:

- right or wrong final answer, against the verdict it wrote (matches / does not match / no check);
- honest: the check's steps are the chain run forward from the sample's own answer, each computed right,
  and its verdict is what they show;
- compared: where the sample writes "X vs Y:", whether X is its check's last result, Y the question's
  end, and its verdict what X and Y say (a verdict that follows the written comparison);
- lucky: a right answer by wrong steps (what RISE's collection scores 0), split by where the steps go wrong.

    python scripts/inverse_checks.py runs/inv-hardbase/base --level hard --problems 60 --samples 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import operator
from collections import Counter

from app.answers.checker import get_checker
from app.refine import vote
from app.tasks import inverse

CHECKER = get_checker("synthetic")  # the inverse task's answers are scored as RISE's collection scores them


def final_answer(text: str) -> int | None:
    """The whole number the text commits to (the checker's extraction), or None."""
    answer = CHECKER.extract(text)
    try:
        return None if answer is None else int(answer)
    except ValueError:  # a decimal: no chain starts there
        return None


def classify(problem: inverse.Problem, text: str) -> dict:
    """One written solution: right?, its verdict, whether its check is honest, lucky and where."""
    answer = final_answer(text)
    right = CHECKER.is_correct(text, problem.answer)
    verdict = ("matches" if ": match." in text or "It matches" in text
               else "does not match" if ": no match." in text or "does not match" in text else "no check")
    solving, checking = inverse.parse(text)
    honest = False
    if answer is not None and verdict != "no check":
        truth = inverse.forward(answer, problem.ops)
        honest = checking == truth and (verdict == "matches") == (truth[-1].result == problem.end)
    lucky = right and not inverse.check_steps(problem, text)
    where = [] if not lucky else [w for w, bad in (("solving", solving != problem.steps),
                                                   ("check", inverse.CHECK in text and not honest)) if bad]
    return {"right": right, "verdict": verdict, "honest": honest, "lucky": lucky, "lucky_where": where,
            "compared": compared(problem, text, checking, verdict), "answer": answer}


def selection(per_problem: list[list[dict]]) -> dict:
    """What the verdict is worth without an oracle, per problem over its samples in order: the first
    sample's answer, the majority answer (ties to the earliest), and the first answer whose own check
    says it matches (the majority where none does), each as the share of problems it gets right."""
    def majority(rows):  # the project's vote (app/refine/vote.py), its ties to the earliest answer
        winner, _ = vote.majority([None if r["answer"] is None else str(r["answer"]) for r in rows], operator.eq)
        return next((r for r in rows if str(r["answer"]) == winner), rows[0])

    def first_match(rows):
        return next((r for r in rows if r["verdict"] == "matches"), None) or majority(rows)

    n = len(per_problem)
    picks = {"first sample": lambda rows: rows[0], "majority": majority, "first that says it matches": first_match}
    right = {name: [pick(rows)["right"] for rows in per_problem] for name, pick in picks.items()}
    better = sum(f and not m for f, m in zip(right["first that says it matches"], right["majority"]))
    worse = sum(m and not f for f, m in zip(right["first that says it matches"], right["majority"]))
    se = math.sqrt(max(better + worse - (better - worse) ** 2 / n, 0)) / n  # paired, over problems
    return {"problems": n, **{name: round(sum(r) / n, 4) for name, r in right.items()},
            "first that says it matches - majority": {"difference": round((better - worse) / n, 4),
                                                       "se": round(se, 4), "better": better, "worse": worse}}


def compared(problem: inverse.Problem, text: str, checking: list, verdict: str) -> str:
    """"none" (no "X vs Y:"), else which part of the written comparison is off: "copied" (X is
    not the check's last result, or Y not the question's end), "verdict" (the verdict is not what X and
    Y say), or "follows"."""
    m = inverse.COMPARISON_RE.search(text.partition(inverse.CHECK)[2])
    if m is None or verdict == "no check":
        return "none"
    got, want = int(m.group(1)), int(m.group(2))
    if not checking or got != checking[-1].result or want != problem.end:
        return "copied"
    return "follows" if (verdict == "matches") == (got == want) else "verdict"


def tally(rows: list[dict]) -> dict:
    verdicts = Counter(f"{'right' if r['right'] else 'wrong'}, {r['verdict']}" for r in rows)
    wrong = [r for r in rows if not r["right"]]
    return {
        "samples": len(rows),
        "right": sum(r["right"] for r in rows),
        "answer x verdict": dict(sorted(verdicts.items())),
        "honest checks": sum(r["honest"] for r in rows),
        "written comparison": dict(Counter(r["compared"] for r in rows)),
        "wrong answers whose check says it matches": sum(r["verdict"] == "matches" for r in wrong),
        "wrong answers": len(wrong),
        "lucky": sum(r["lucky"] for r in rows),
        "lucky, wrong at": dict(Counter("+".join(r["lucky_where"]) or "?" for r in rows if r["lucky"])),
    }


def sample(model: str, problems: list[inverse.Problem], n: int, temperature: float, seed: int) -> list[list[str]]:
    from app.engines.base import SamplingParams
    from app.engines.hf import HFEngine

    async def go():
        engine = HFEngine(model)
        try:
            return await engine.generate([[{"role": "user", "content": p.question}] for p in problems],
                                         SamplingParams(max_tokens=200, temperature=temperature, n=n, seed=seed))
        finally:
            await engine.aclose()

    return [[c.text for c in per] for per in asyncio.run(go())]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--level", default="hard", choices=sorted(inverse.LEVELS))
    ap.add_argument("--problems", type=int, default=60)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=777, help="the validation problems' seed")
    a = ap.parse_args(argv)
    problems = inverse.problems(a.seed, a.problems, inverse.LEVELS[a.level], split="validation")
    texts = sample(a.model, problems, a.samples, a.temperature, seed=3)
    per_problem = [[classify(p, t) for t in ts] for p, ts in zip(problems, texts)]
    print(json.dumps({**tally([r for rows in per_problem for r in rows]), "selection": selection(per_problem)},
                     indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
