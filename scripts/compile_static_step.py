"""Does `torch.compile` of the static decode step help on this CPU? (issue 16)

Times the decode step of the shipped model at batch 1, 8 and 32 by path: the eager reference step,
the static-shape step, and the static step with its forward under `torch.compile` (compile time
reported apart), and writes the figures with the verdict: the compiled step is worth trying in
`rise bench` only if it is clearly faster than the eager step at the batch sizes the service runs.

    flock /tmp/rise-heavy.lock .venv/bin/python scripts/compile_static_step.py --out docs/results/compile-cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpu_decode_step  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--iters", type=int, default=60)
    ap.add_argument("--out", type=Path, default=Path("docs/results/compile-cpu.json"))
    a = ap.parse_args()
    report = gpu_decode_step.main(["--device", "cpu", "--batch", *map(str, a.batch), "--iters", str(a.iters),
                                   "--paths", "eager", "static", "compiled"])
    ms = report["step_ms"]
    report["cpu"] = platform.processor() or platform.machine()
    report["speedup_compiled_over_eager"] = {n: round(ms["eager"][n]["median"] / ms["compiled"][n]["median"], 2)
                                             for n in a.batch}
    report["speedup_static_over_eager"] = {n: round(ms["eager"][n]["median"] / ms["static"][n]["median"], 2)
                                           for n in a.batch}
    report["command"] = ("flock /tmp/rise-heavy.lock .venv/bin/python scripts/compile_static_step.py "
                         f"--batch {' '.join(map(str, a.batch))} --iters {a.iters}")
    a.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: report[k] for k in ("speedup_compiled_over_eager", "speedup_static_over_eager")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
