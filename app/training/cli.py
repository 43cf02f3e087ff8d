"""`rise train base ...` and `rise train rise ...`: each subcommand owns its arguments.

    rise train base --help
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    usage = "usage: rise train {base,rise} [options]  (add --help for the options)"
    if argv and argv[0] in ("-h", "--help"):
        print(usage)
        return 0
    if not argv or argv[0] not in ("base", "rise"):
        print(usage, file=sys.stderr)
        return 2
    from app.training import args

    # bad arguments are refused here, before the training code (and torch) is imported
    (args.parse_base if argv[0] == "base" else args.parse_rise)(argv[1:])
    if argv[0] == "base":
        from app.training.base import main as run
    else:
        from app.training.rise import main as run
    return int(run(argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
