"""`rise train base ...` and `rise train rise ...`: each subcommand owns its arguments."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("base", "rise"):
        print("usage: rise train {base,rise} [options]  (add --help for the options)", file=sys.stderr)
        return 2
    if argv[0] == "base":
        from app.training.base import main as run
    else:
        from app.training.rise import main as run
    return int(run(argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
