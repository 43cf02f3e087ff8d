"""scripts/size_gains.py (issue 28 part 3: the no-oracle gain against model size, from what
scripts/gpu_sizes.sh brings back): each size's paired differences, sizes ordered by parameters, the
archive read like the folder, the plot written, and evaluations on other problems refused.

    .venv/bin/python -m pytest -q tests/evaluation/test_size_gains.py
"""

import json
import tarfile
import tempfile
from pathlib import Path

import pytest

from tests.evaluation.test_inverse_goals import _rec, _run
from tests.scripts import load_script

FLAT = _rec([1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0])


def _size(root: Path, name: str, parameters: int, rise: dict, base: dict = FLAT, rft: dict = FLAT, ids=None) -> Path:
    d = root / name
    (d / "pre").mkdir(parents=True)
    (d / "pre" / "training.json").write_text(json.dumps({"parameters": parameters}))
    for model, rec in (("rise", rise), ("rft", rft)):
        _run(d / f"eval-{model}", rec)
    _run(d / "eval-base", base, **({"ids": ids} if ids else {}))
    return d


def test_each_size_gets_its_paired_gains_in_order_of_parameters(tmp_path):
    work = tmp_path / "work"
    # the larger model: turn 2 right on two more problems than turn 1 and than five samples
    _size(work, "large", 20_000_000, _rec([1, 0, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]))
    # the smaller: turn 2 loses turn 1's one right answer
    _size(work, "small", 2_000_000, _rec([1, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]))
    s = load_script("size_gains")
    rows = [s.gains(work / n) for n in ("small", "large")]
    assert rows[0]["rise m1@t2 - m5@t1"]["diff"] == -0.25 and rows[1]["rise m1@t2 - m5@t1"]["diff"] == 0.5
    assert rows[1]["rise t2 - t1 own"]["diff"] == 0.5 and rows[1]["base t2 - t1 own"]["diff"] == 0.0
    assert rows[1]["rise m1@t2 - rft m5@t1"]["diff"] == 0.5 and rows[0]["rise t1 - base t1"]["diff"] == 0.0
    assert "| large | 20.0M | " in s.table(rows) and "+50.0 (" in s.table(rows)

    archive = tmp_path / "sizes.tgz"  # what comes back from the GPU: the archive, read as the folder is
    with tarfile.open(archive, "w:gz") as t:
        for d in work.iterdir():
            t.add(d, arcname=d.name)
    out, fig = tmp_path / "sizes.json", tmp_path / "sizes.png"
    assert s.main([str(archive), "--json", str(out), "--plot", str(fig)]) == 0
    written = json.loads(out.read_text())
    assert [r["size"] for r in written] == ["small", "large"] and written == json.loads(json.dumps(rows))
    assert fig.stat().st_size > 1000 and fig.read_bytes()[:4] == b"\x89PNG"


def test_evaluations_on_other_problems_are_refused(tmp_path):
    d = _size(tmp_path, "small", 2_000_000, FLAT, ids=["a", "b", "c", "e"])
    with pytest.raises(SystemExit, match="share their problems"):
        load_script("size_gains").gains(d)


def test_bad_sources_are_refused_in_one_line_and_nothing_leaves_the_archive(tmp_path):
    s = load_script("size_gains")
    work = tmp_path / "work"
    good = _size(work, "small", 2_000_000, FLAT)
    (tmp_path / "not.tgz").write_text("not an archive")
    evil = tmp_path / "evil.tgz"  # a member that would land outside the folder it is extracted to
    with tarfile.open(evil, "w:gz") as t:
        t.add(good / "pre" / "training.json", arcname="../escaped.json")
    (good / "eval-rft" / "metrics.json").write_text("{not json")
    for source, says in ((tmp_path / "missing.tgz", "FileNotFoundError"), (tmp_path / "not.tgz", "ReadError"),
                         (evil, "OutsideDestinationError"), (work, "JSONDecodeError")):
        with pytest.raises(SystemExit, match=f"not the records .*{says}"):
            s.main([str(source)])
    assert not (Path(tempfile.gettempdir()) / "escaped.json").exists()  # where ../ from its temporary folder leads
