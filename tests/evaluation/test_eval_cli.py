import json

from app.evaluation.cli import main


def test_eval_on_the_shipped_model_writes_metrics_and_plot(tmp_path, model_path):
    out = tmp_path / "ev"
    assert main(["--model", str(model_path), "--limit", "6", "--turns", "2", "--seeds", "0", "--level", "easy",
                 "--out", str(out), "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    s = m["summary"]
    for key in ("p1@t1", "p1@t2", "m1@t1", "m1@t2", "m5@t1", "pass@1", "pass@5"):
        assert s[key]["n"] == 6 and 0 <= s[key]["mean"] <= 1
    assert s["p1@t2"]["mean"] >= s["p1@t1"]["mean"]
    assert s["p1@t1"]["mean"] >= 0.5  # the shipped model solves easy problems
    assert (out / "turns.png").stat().st_size > 1000


def test_eval_reads_gsm8k_from_shared_data(tmp_path, model_path, data_dir, monkeypatch):
    monkeypatch.setenv("RISE_DATA_DIR", str(data_dir))
    out = tmp_path / "gsm"
    assert main(["--model", str(model_path), "--dataset", "gsm8k", "--limit", "2", "--turns", "1", "--seeds", "0",
                 "--max-tokens", "32", "--out", str(out), "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["dataset"] == "gsm8k" and m["summary"]["p1@t1"]["n"] == 2
