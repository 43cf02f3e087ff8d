import json

import pytest

from app.evaluation.cli import main
from app.evaluation.report import main as report_main
from app.tasks import datasets, synthetic
from tests.conftest import BASE_MODEL


def test_eval_on_the_shipped_model_writes_metrics_records_and_plot(tmp_path, model_path, capsys):
    out = tmp_path / "ev"
    assert main(["--model", str(model_path), "--limit", "6", "--turns", "2", "--seeds", "0", "--level", "easy",
                 "--out", str(out), "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    s = m["summary"]
    for key in ("p1@t1", "p1@t2", "m1@t1", "m1@t2", "m5@t1", "pass@1", "pass@5"):
        assert s[key]["n"] == 6 and s[key]["seeds"] == 1 and 0 <= s[key]["mean"] <= 1
    assert s["p1@t2"]["mean"] >= s["p1@t1"]["mean"]
    assert s["p1@t1"]["mean"] >= 0.5  # the shipped model solves easy problems
    assert (m["split"], m["problem_seed"]) == ("test", 1234) and "no-oracle run" in m["p1_source"]
    assert set(m["flow"]) == {"turn_accuracy", "t1->t2"} and set(m["flow"]["t1->t2"]) == {
        "wrong_to_right", "right_to_wrong", "answer_changed"}
    assert set(m["tokens"]) == {"p1@t1", "p1@t2", "m1@t1", "m1@t2", "m5@t1"}
    assert set(m["paired"]) == {"m1@t2 - m5@t1", "m1@t2 - m1@t1", "p1@t2 - p1@t1", "t2 - t1 (each turn's own accuracy)"}
    records = json.loads((out / "per_problem.json").read_text())
    assert len(records["problem_ids"]) == 6 and len(records["seeds"]["0"]["m1@t2"]) == 6
    assert "records" not in m and (out / "turns.png").stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "turn k's own accuracy" in printed and "tokens  m5@t1" in printed and "paired m1@t2 - m5@t1" in printed


def test_two_models_on_the_same_problems_compare_paired(tmp_path, model_path, capsys):
    args = ["--limit", "4", "--turns", "2", "--seeds", "0", "1", "--parallel", "1", "--level", "expert",
            "--split", "validation", "--no-progress"]
    assert main(["--model", str(model_path), "--out", str(tmp_path / "rise"), *args]) == 0
    assert main(["--model", str(BASE_MODEL), "--out", str(tmp_path / "base"), *args]) == 0
    m = json.loads((tmp_path / "rise" / "metrics.json").read_text())
    assert (m["split"], m["problem_seed"]) == ("validation", 4321) and m["summary"]["m1@t2"]["n"] == 4
    capsys.readouterr()
    assert report_main([str(tmp_path / "rise" / "metrics.json"), str(tmp_path / "base" / "metrics.json")]) == 0
    printed = capsys.readouterr().out
    assert "| metric | rise − base (points) | SE | z |" in printed and "| m1@t2 | " in printed
    assert "Paired over the same 4 problems" in printed


@pytest.mark.parametrize("dataset,split", [("gsm8k", "validation"), ("math500", "train"), ("math500", "validation")])
def test_a_split_the_dataset_does_not_have_is_refused(dataset, split, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--dataset", dataset, "--split", split, "--out", str(tmp_path / "x")])
    assert e.value.code == 2
    assert f"dataset {dataset} has no '{split}' split" in capsys.readouterr().err
    assert not (tmp_path / "x" / "metrics.json").exists()


def test_validation_problems_are_drawn_with_their_own_seed_and_never_share_a_test_structure():
    val = synthetic.problems(datasets.default_problem_seed("validation"), 300, synthetic.LEVELS["expert"], "validation")
    test = synthetic.problems(datasets.default_problem_seed("test"), 300, synthetic.LEVELS["expert"], "test")
    assert datasets.default_problem_seed("validation") != datasets.default_problem_seed("test")
    assert {synthetic.split_of(p) for p in val} == {"validation"}
    assert not {synthetic.structure(p.start, p.ops) for p in val} & {synthetic.structure(p.start, p.ops) for p in test}
    assert datasets.load("synthetic", "validation", 3, level="expert") == [(p.question, p.answer) for p in val[:3]]


def test_eval_reads_gsm8k_from_shared_data(tmp_path, model_path, data_dir, monkeypatch):
    monkeypatch.setenv("RISE_DATA_DIR", str(data_dir))
    out = tmp_path / "gsm"
    assert main(["--model", str(model_path), "--dataset", "gsm8k", "--limit", "2", "--turns", "1", "--seeds", "0",
                 "--max-tokens", "32", "--out", str(out), "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["dataset"] == "gsm8k" and m["summary"]["p1@t1"]["n"] == 2 and m["problem_seed"] is None
