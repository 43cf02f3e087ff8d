"""The arguments of `rise train base` and `rise train rise`, apart from the training code so that a bad
value is refused (exit 2, a message) in a fraction of a second, before torch is imported.

    rise train base --out models/base-synth --minutes 5 --device cuda
    rise train rise --model models/base-synth --out models/rise-synth --iterations 2
    rise train rise --model M --out O --dataset jsonl:train.jsonl --task gsm8k --source teacher \\
        --teacher-base-url http://127.0.0.1:8001/v1 --teacher-model big --eval dev.jsonl --eval-limit 200
"""

from __future__ import annotations

import argparse

from app.cli_args import (DefaultsHelpFormatter, model_dir, non_negative_float, non_negative_int, positive_float,
                          positive_int, readable_file, seed, temperature, writable_dir)
from app.engines.factory import ENGINES
from app.tasks import files, synthetic
from app.tasks.registry import NAMES, get_task
from app.training import lora, synthetic_recipe
from app.training.collect import SOURCES
from app.training.criteria import CRITERIA
from app.training.model_init import SIZES


BASE_SHAPES = ("single", "fix", "fix2", "keep", "check")  # app/training/base.py's SHAPES (not imported: it imports torch)


def base_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rise train base",
                                 description="Train a base model on synthetic problems in the refinement format.",
                                 formatter_class=DefaultsHelpFormatter)
    ap.add_argument("--out", type=writable_dir, required=True)
    ap.add_argument("--size", choices=list(SIZES), default="base")
    ap.add_argument("--steps", type=positive_int, default=2000)
    ap.add_argument("--minutes", type=positive_float, default=None, help="train for this wall-clock time instead of --steps")
    ap.add_argument("--lr", type=positive_float, default=1e-3)
    ap.add_argument("--batch-size", type=positive_int, default=64)
    ap.add_argument("--grad-accum", type=positive_int, default=1,
                    help="split each batch into this many micro-batches: the same step with less memory")
    ap.add_argument("--grad-checkpointing", action="store_true",
                    help="recompute activations in the backward pass instead of keeping them")
    ap.add_argument("--device", default=None)
    ap.add_argument("--workers", type=non_negative_int, default=1, help="data loader processes (0: in this one)")
    ap.add_argument("--seed", type=seed, default=0)
    ap.add_argument("--init", type=model_dir, default=None, help="continue from this checkpoint instead of a fresh model")
    ap.add_argument("--levels", nargs="+", choices=list(synthetic.LEVELS), default=None,
                    help="difficulty mix (repeat a name to weight it; default: every level once)")
    ap.add_argument("--dataset", choices=files.GENERATED, default="synthetic",
                    help="the problems: forward chains (synthetic) or inverse ones (app/tasks/inverse.py; with "
                         "--init, a fine-tune of a base model on the new task)")
    ap.add_argument("--shapes", nargs="+", choices=BASE_SHAPES, default=None,
                    help="conversation shapes to train (default: the base recipe's mix of single, fix, fix2 and keep; "
                         "single: the first turn only; check: inverse only, a wrong attempt's honest check)")
    return ap


def parse_base(argv: list[str] | None) -> argparse.Namespace:
    ap = base_parser()
    a = ap.parse_args(argv)
    if a.shapes and "check" in a.shapes and a.dataset != "inverse":
        ap.error("--shapes check needs --dataset inverse (its solutions end with a forward check)")
    return a


def rise_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="rise train rise", description="RISE iterations: collect, fine-tune, evaluate.",
        formatter_class=DefaultsHelpFormatter,
        epilog="A task's own knobs (the synthetic task's levels, re-check recipe) go in --recipe: "
               "app/training/synthetic_recipe.py lists them.")
    ap.add_argument("--model", type=model_dir, required=True, help="the starting model (HF directory)")
    ap.add_argument("--out", type=writable_dir, required=True)
    data = ap.add_argument_group("data")
    data.add_argument("--dataset", default=None, metavar="|".join(files.SPECS),
                      help="the training questions: generated synthetic problems (default), GSM8K train or MATH-500 "
                           "from RISE_DATA_DIR, or a JSON-lines file")
    data.add_argument("--task", choices=NAMES, default=None,
                      help="the answer format, as the server's RISE_TASK: scores turns with that task's checker "
                           "(built-in datasets: their own; needed for jsonl:PATH)")
    data.add_argument("--question-field", default="question", help="jsonl: the question's field")
    data.add_argument("--answer-field", default="answer", help="jsonl: the answer's field (a bare answer, or a worked "
                                                                "solution the task reads, e.g. GSM8K's '... #### 72')")
    data.add_argument("--eval", type=readable_file, default=None, metavar="FILE",
                      help="a JSON-lines file (the same fields and task) evaluated after each iteration with "
                           "`rise eval`'s metrics")
    data.add_argument("--eval-limit", type=non_negative_int, default=0,
                      help="evaluate this many questions after each iteration: of --eval, else a held-out slice (the "
                           "dataset's last rows, never trained on; synthetic: the validation split) (0: skip)")
    data.add_argument("--from-traces", type=readable_file, default=None,
                      help="labelled served traffic (`rise traces export --labelled-only`) instead of a dataset, each "
                           "trace scored with the task it was served under: its served turns are the first "
                           "iteration's rollouts (app/training/from_traces.py)")
    data.add_argument("--recipe", default=None, metavar="JSON|FILE",
                      help="the dataset's task recipe, as JSON or a JSON file (synthetic: levels, re-check knobs; "
                           "inverse: levels only)")
    src = ap.add_argument_group("improved turns")
    src.add_argument("--source", choices=SOURCES, default="self",
                     help="self: best-of-N of the model; teacher: best-of-N of --teacher; solver/recheck: the task's "
                          "exact solver (synthetic only)")
    src.add_argument("--criterion", choices=CRITERIA, default="all",
                     help="which turns of a trajectory train (app/training/criteria.py): all; better (than the turn "
                          "before); best (so far); success (right turns only)")
    src.add_argument("--best-of", type=positive_int, default=16, help="N for self-distillation / teacher sampling")
    src.add_argument("--single-turn", action="store_true",
                     help="rejection-sampling fine-tuning, the one-turn baseline: per question --best-of samples of "
                          "turn 1 on the bare question, and each right one trains as question -> answer (no "
                          "feedback, no second turn; --source self or teacher); with --source recheck, the same-data "
                          "one-turn baseline of the re-check recipe: each re-check text trains as the answer to "
                          "its bare question")
    src.add_argument("--teacher", default=None, help="teacher model directory (--teacher-engine hf or vllm)")
    src.add_argument("--teacher-engine", choices=ENGINES, default=None,
                     help="how the teacher runs (default: openai with --teacher-base-url, else hf)")
    src.add_argument("--teacher-base-url", default=None,
                     help="a remote OpenAI-compatible endpoint as teacher, e.g. http://host:8001/v1")
    src.add_argument("--teacher-model", default=None, help="the remote teacher's model name (default: its first)")
    src.add_argument("--teacher-api-key", default=None,
                     help="the remote teacher's API key (default: the RISE_TEACHER_API_KEY environment variable)")
    src.add_argument("--teacher-timeout", type=positive_float, default=300.0,
                     help="seconds a remote teacher's call may take (retries and Retry-After as served)")
    roll = ap.add_argument_group("rollouts and training")
    roll.add_argument("--engine", choices=("hf", "vllm"), default="hf",
                      help="the engine rolling out the current model (vllm: its batching)")
    roll.add_argument("--iterations", type=positive_int, default=2)
    roll.add_argument("--problems", type=positive_int, default=600, help="training questions per iteration")
    roll.add_argument("--turns", type=positive_int, default=3, help="rollout turns")
    roll.add_argument("--temperature", type=temperature, default=1.0)
    roll.add_argument("--max-tokens", type=positive_int, default=160, help="tokens per sampled turn")
    roll.add_argument("--tau", type=positive_float, default=0.4)
    roll.add_argument("--epochs", type=positive_int, default=2)
    roll.add_argument("--lr", type=positive_float, default=1e-4)
    roll.add_argument("--batch-size", type=positive_int, default=32)
    roll.add_argument("--grad-accum", type=positive_int, default=1,
                      help="split each batch (each process's share of it) into this many micro-batches: the same "
                           "step with less memory")
    roll.add_argument("--grad-checkpointing", action="store_true",
                      help="recompute activations in the backward pass instead of keeping them (less memory, "
                           "about a third more compute)")
    roll.add_argument("--fsdp", action="store_true",
                      help="under several processes (accelerate launch), shard the weights, gradients and optimizer "
                           "state over them (FSDP, ZeRO-3's partitioning) instead of replicating them (DDP); full "
                           "weights only (not with --lora-r)")
    roll.add_argument("--engine-batch", type=positive_int, default=64)
    roll.add_argument("--replay", type=non_negative_float, default=0.0,
                      help="add this many conversations of the same dataset per collected example (its worked "
                           "solutions; synthetic: the base recipe's), weighted like right turns, to keep turn-1 "
                           "skills from drifting")
    roll.add_argument("--anchor", type=non_negative_float, default=0.0,
                      help="replayed turns are trained to keep --anchor-model's next-token distribution (this weight "
                           "times the KL to it) instead of imitating the replayed text (0: imitate)")
    roll.add_argument("--anchor-model", type=model_dir, default=None,
                      help="the frozen model --anchor keeps close to (default: --model)")
    roll.add_argument("--device", default=None)
    roll.add_argument("--seed", type=seed, default=0)
    roll.add_argument("--max-examples", type=non_negative_int, default=None,
                      help="train on at most this many collected examples per iteration (a random subset, before "
                           "replay is added): another run's count, for a same-data baseline (0: nothing trains, "
                           "replay included, whose count follows the examples kept: the model unchanged)")
    lora.add_args(ap)
    return ap


def parse_rise(argv: list[str] | None) -> argparse.Namespace:
    """The arguments, with the data read and checked (`a.train_set`, `a.eval_set`, `a.recipe`): bad
    input is refused here, exit 2 and a message, before any model loads."""
    ap = rise_parser()
    a = ap.parse_args(argv)
    lora.check(ap, a)
    if a.fsdp and a.lora_r:
        ap.error("--fsdp shards full weights; with --lora-r the frozen model is small enough to replicate (leave --fsdp out)")
    _check_teacher(ap, a)
    if a.from_traces is not None:
        _check_traces(ap, a)
    else:
        _check_data(ap, a)
    return a


def _check_teacher(ap: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    import os

    if a.teacher_engine is None:
        a.teacher_engine = "openai" if a.teacher_base_url else "hf"
    if a.teacher_engine == "openai":
        from app.engines.openai_remote import check_base_url

        if a.teacher is not None:
            ap.error("--teacher is a model directory; a remote teacher is --teacher-base-url (and --teacher-model)")
        try:
            a.teacher_base_url = check_base_url(a.teacher_base_url) if (a.source == "teacher" or a.teacher_base_url) \
                else None
        except ValueError as e:
            ap.error(str(e).replace("--base-url", "--teacher-base-url"))
        a.teacher_api_key = a.teacher_api_key or os.environ.get("RISE_TEACHER_API_KEY")
    else:
        if a.teacher_base_url:
            ap.error(f"--teacher-base-url is for a remote teacher (--teacher-engine openai), not {a.teacher_engine}")
        if a.teacher is not None:
            try:
                a.teacher = model_dir(a.teacher)
            except argparse.ArgumentTypeError as e:
                ap.error(f"argument --teacher: {e}")
        elif a.source == "teacher":
            ap.error("--source teacher needs --teacher PATH (a model directory) or --teacher-base-url URL")


def _check_data(ap: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    from app.tasks.files import DatasetError

    try:
        name, path = files.parse_spec(a.dataset or "synthetic")
    except DatasetError as e:
        ap.error(f"--dataset: {e}")
    own = files.builtin_task(name)
    if own and a.task and a.task != own:
        ap.error(f"--dataset {name} is scored by task {own} (its answers are in that format): leave --task out "
                 f"or train on a JSON-lines file of task {a.task} (--dataset jsonl:PATH)")
    if own is None and a.task is None:
        ap.error("--dataset jsonl:PATH needs --task: the answer format its questions are scored in "
                 f"({', '.join(NAMES)}; as the server's RISE_TASK)")
    a.task = a.task or own
    a.eval_task, a.traced = a.task, None
    task = get_task(a.task)
    if a.single_turn and a.source not in ("self", "teacher", "recheck"):
        ap.error(f"--single-turn samples the model (or --teacher) on the bare question; --source {a.source} "
                 "writes targets without sampling: use --source self or teacher (or recheck, whose re-check "
                 "texts then train as one-turn answers)")
    if a.recipe is not None and name not in files.GENERATED:
        ap.error(f"--recipe holds the synthetic task's own knobs; --dataset {a.dataset} has none")
    if name == "inverse" and a.source == "recheck":
        ap.error("--source recheck needs the forward problems of --dataset synthetic; --dataset inverse has an exact "
                 "solver: use --source self, teacher or solver")
    if a.source in ("solver", "recheck") and name not in files.GENERATED:
        ap.error(f"--source {a.source} needs the task's exact solver and its own problems (--dataset synthetic or "
                 f"inverse); "
                 f"--dataset {a.dataset} (task {a.task}) has none: use --source self or teacher")
    try:
        a.recipe = synthetic_recipe.load_recipe(a.recipe) if name in files.GENERATED else None
        if name == "synthetic":
            a.train_set = None  # drawn afresh each iteration
        elif name == "inverse":  # a fixed pool, the same for every run with these counts and levels
            if set(a.recipe.model_dump(exclude_defaults=True)) - {"level"}:
                raise ValueError("--dataset inverse takes only 'level' (the others are the forward task's knobs)")
            a.train_set = synthetic_recipe.inverse_set(a.recipe, a.problems * a.iterations, "train")
            if a.eval_limit and not a.eval:  # its held-out slice is the validation split, as synthetic's
                a.eval_set = synthetic_recipe.inverse_set(a.recipe, a.eval_limit, "validation")
        elif path is None:
            a.train_set = files.read_builtin(name, task)
        else:
            a.train_set = files.read_questions(path, task, a.question_field, a.answer_field)
        if a.eval or name != "inverse":
            a.eval_set = files.read_questions(a.eval, task, a.question_field, a.answer_field) if a.eval else None
        elif not a.eval_limit:
            a.eval_set = None
    except ValueError as e:
        ap.error(f"--recipe: {e}" if name in files.GENERATED and not isinstance(e, DatasetError) else str(e))
    if a.eval_set is None and a.eval_limit and a.train_set is not None:
        if a.eval_limit >= len(a.train_set):
            ap.error(f"--eval-limit {a.eval_limit} holds out every question of the dataset ({len(a.train_set)}); "
                     "give a smaller slice or an --eval file")
        a.train_set, a.eval_set = a.train_set[:-a.eval_limit], a.train_set[-a.eval_limit:]
    if a.replay and a.train_set is not None and not any(q.solution for q in a.train_set):
        ap.error("--replay trains on the dataset's worked solutions, and its answers are bare: give an answer field "
                 "holding worked solutions (such as GSM8K's '... #### 72'), or --replay 0")


def _check_traces(ap: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    from app.training.from_traces import TracesError, check_scorable, load_traces

    if a.source not in ("self", "teacher"):
        ap.error("--from-traces takes --source self or teacher (the other sources need generated problems)")
    if a.single_turn:
        ap.error("--from-traces: the traces' served turns are the rollouts; --single-turn samples a dataset's "
                 "questions afresh: give --dataset")
    if a.dataset is not None or a.recipe is not None:
        ap.error("--from-traces replaces --dataset (and its --recipe): give one of them")
    if a.eval_limit and a.eval is None:
        ap.error("--from-traces: --eval-limit evaluates on an --eval FILE (traces have no held-out slice)")
    if a.replay:
        ap.error("--from-traces: --replay trains on a dataset's worked solutions, and traces have none (their right "
                 "turns are trained already): leave --replay out")
    try:
        labelled = load_traces(a.from_traces)
    except (TracesError, OSError, UnicodeDecodeError) as e:
        ap.error(f"--from-traces: {e}")
    if not labelled:
        ap.error(f"--from-traces: {a.from_traces} holds no labelled trace (a rating or a reference); export with "
                 "`rise traces export --labelled-only` after feedback")
    try:
        a.traced = check_scorable(labelled, a.from_traces, a.task)
    except TracesError as e:
        ap.error(f"--from-traces: {e}")
    tasks = {t.task for t in a.traced}
    a.eval_task = a.task or (next(iter(tasks)) if len(tasks) == 1 else None)
    if a.eval is not None:
        if len(tasks) > 1 and a.task is None:
            ap.error(f"--eval: the traces were served under several tasks ({', '.join(sorted(tasks))}); "
                     "name the eval file's with --task")
        from app.tasks.files import DatasetError

        try:
            a.eval_set = files.read_questions(a.eval, get_task(a.eval_task), a.question_field, a.answer_field)
        except DatasetError as e:
            ap.error(str(e))
    else:
        a.eval_set = None
    a.train_set = a.recipe = None
