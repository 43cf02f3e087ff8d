"""The `rise` command: refine, serve, eval, train, bench.

    rise refine "Sam has 23 apples. He buys 17 more. How many apples does Sam have now?" --reference 40
    rise serve --port 8000
    rise eval --dataset synthetic --limit 200 --out runs/eval
    rise train base --out models/base-synth --minutes 5 --device cuda
    rise traces export --url sqlite:///traces.db --out data.jsonl --labelled-only
"""

from __future__ import annotations

import sys

COMMANDS = {
    "refine": ("app.refine.cli", "run the refinement loop on one question"),
    "serve": ("app.api.cli", "start the HTTP service"),
    "eval": ("app.evaluation.cli", "evaluate a model with RISE's metrics"),
    "train": ("app.training.cli", "train a base model (train base) or run RISE (train rise)"),
    "bench": ("app.bench.cli", "measure throughput against baselines"),
    "traces": ("app.traces.cli", "export stored refinements as JSON lines (traces export)"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"] and argv[1:2] not in (["-h"], ["--help"]):
        # SIGTERM while the server's modules import (seconds on a busy machine) is a clean exit: nothing
        # is served yet (app.api.process keeps this until uvicorn takes the signals over)
        import os
        import signal

        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if not argv or argv[0] in ("-h", "--help"):
        out = sys.stdout if argv else sys.stderr  # no command: a usage error (status 2)
        print("usage: rise {%s} ...\n" % ",".join(COMMANDS), file=out)
        for name, (_, help_) in COMMANDS.items():
            print(f"  {name:<8}{help_}", file=out)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"rise: unknown command {name!r}; expected one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    import importlib

    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
