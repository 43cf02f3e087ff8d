"""Render the Grafana dashboard's panels from a real Prometheus scraping a real rise-serve under a
little traffic, as one PNG (docs/dashboard.png): what an operator sees, without Grafana.

    PYTHONPATH=. .venv/bin/python scripts/render_dashboard.py --seconds 60
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
import yaml

from app.tasks import synthetic
from tests.servers import free_port, start_server, stop_server

ROOT = Path(__file__).resolve().parents[1]


def traffic(url: str, stop: threading.Event) -> None:
    rng = random.Random(0)
    probs = synthetic.problems(5, 300, synthetic.LEVELS["expert"])
    with httpx.Client(base_url=url, timeout=60) as c:
        while not stop.is_set():
            p = rng.choice(probs)
            body = {"question": p.question, "max_turns": 4, "temperature": 0.8, "seed": rng.randrange(1 << 30)}
            if rng.random() < 0.6:
                body["reference"] = p.answer
            c.post("/v1/refine", json=body)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    a = ap.parse_args()
    dash = json.loads((ROOT / "deploy/grafana/dashboards/rise-serve.json").read_text())
    proc, url, _ = start_server()
    tmp = Path(tempfile.mkdtemp())
    port = free_port()
    cfg = {"global": {"scrape_interval": "1s"},
           "scrape_configs": [{"job_name": "rise-serve", "static_configs": [{"targets": [url.removeprefix("http://")]}]}]}
    (tmp / "p.yml").write_text(yaml.safe_dump(cfg))
    prom = subprocess.Popen([shutil.which("prometheus"), f"--config.file={tmp / 'p.yml'}", f"--storage.tsdb.path={tmp}/d",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop = threading.Event()
    workers = [threading.Thread(target=traffic, args=(url, stop)) for _ in range(8)]
    start = time.time()
    try:
        for w in workers:
            w.start()
        time.sleep(a.seconds)
        stop.set()
        for w in workers:
            w.join()
        time.sleep(3)
        end = time.time()
        series = []
        for panel in dash["panels"]:
            lines = []
            for t in panel["targets"]:
                q = (t["expr"].replace('=~"$model_name"', '=~".*"').replace("$__rate_interval", "15s")
                     .replace("$__range", f"{int(end - start)}s"))
                r = httpx.get(f"http://127.0.0.1:{port}/api/v1/query_range",
                              params={"query": q, "start": start + 5, "end": end, "step": 2}).json()
                for res in r["data"]["result"]:
                    label = t["legendFormat"]
                    for k, v in res["metric"].items():
                        label = label.replace("{{" + k + "}}", v)
                    xs = [float(x) - start for x, _ in res["values"]]
                    ys = [float(y) for _, y in res["values"]]
                    lines.append((label, xs, ys))
            series.append((panel, lines))
    finally:
        stop.set()
        prom.terminate()
        stop_server(proc)
    plot(series, a.out, a.seconds)
    print(a.out)


def plot(series, out: Path, seconds: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 3, figsize=(16, 13), dpi=90)
    for ax, (panel, lines) in zip(axes.flat, series):
        for label, xs, ys in lines:
            if panel["type"] == "barchart":
                ax.bar(label.replace("turn ", ""), ys[-1] * 100)
            else:
                ax.plot(xs, ys, label=label)
        ax.set_title(panel["title"] + (f" [{panel['fieldConfig']['defaults']['unit']}]"), fontsize=10)
        if panel["type"] != "barchart" and lines:
            ax.legend(fontsize=7, loc="upper left")
            ax.set_xlabel("seconds", fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(f"rise-serve dashboard, rendered from a live Prometheus ({seconds} s of traffic on base-synth)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)


if __name__ == "__main__":
    main()
