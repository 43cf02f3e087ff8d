"""`rise traces export --url URL --out data.jsonl [--labelled-only] [--since T]`.

`--since` takes Unix seconds or an ISO 8601 date/time (UTC when no zone is given). Bad arguments
exit with status 2 and a message, before the store is opened.

    rise traces export --url sqlite:///traces.db --out data.jsonl --labelled-only
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from app.cli_args import DefaultsHelpFormatter


def since_time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither Unix seconds nor an ISO 8601 date/time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def store_url(text: str) -> str:
    from app.traces.store import check_url

    try:
        check_url(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).replace("RISE_TRACES_URL", "--url")) from None
    from sqlalchemy.engine import make_url

    url = make_url(text)
    if url.get_backend_name() == "sqlite" and not Path(url.database).is_file():
        raise argparse.ArgumentTypeError(f"no SQLite store at {url.database} (sqlite:///relative.db, "
                                         "sqlite:////absolute/path.db)")
    return text


def out_file(text: str) -> Path:
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory; --out names the .jsonl file to write")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"{parent} does not exist")
    return path


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rise traces export", description="Write stored refinements as JSON lines.",
                                 formatter_class=DefaultsHelpFormatter)
    ap.add_argument("--url", type=store_url, required=True, help="the store's SQLAlchemy URL (RISE_TRACES_URL)")
    ap.add_argument("--out", type=out_file, required=True, help="the .jsonl file to write")
    ap.add_argument("--labelled-only", action="store_true",
                    help="only traces with feedback (a reference or a rating), with their reference")
    ap.add_argument("--since", type=since_time, default=None, help="only traces from this time (Unix seconds or ISO 8601)")
    return ap


def main(argv: list[str]) -> int:
    usage = "usage: rise traces export --url URL --out FILE [--labelled-only] [--since T]"
    if argv and argv[0] in ("-h", "--help"):
        print(usage)
        return 0
    if not argv or argv[0] != "export":
        print(usage, file=sys.stderr)
        return 2
    a = parser().parse_args(argv[1:])
    from sqlalchemy.exc import SQLAlchemyError

    from app.traces.export import export

    try:
        n = export(a.url, a.out, labelled_only=a.labelled_only, since=a.since)
    except (SQLAlchemyError, OSError) as e:
        print(f"rise traces export: cannot read the store or write {a.out}: {type(e).__name__}: "
              f"{str(getattr(e, 'orig', None) or e).splitlines()[0][:200]}", file=sys.stderr)
        return 1
    print(f"{n} traces written to {a.out}")
    return 0
