"""Average the weights of checkpoints of one lineage (a "model soup", Wortsman et al. 2022): the
shipped re-check model is the mean of RISE iterations 7 and 8, which traded expert re-checks for
easier levels' steadiness in opposite directions (docs/results/README.md).

    python -m app.training.soup runs/r14/v3g runs/r14/v3h --out runs/r14/soup_gh
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from app.cli_args import model_dir, writable_dir

_UNSHARED = {"_name_or_path", "transformers_version", "torch_dtype", "dtype"}  # config keys that may differ


def soup(models: list[Path], out: Path) -> Path:
    """Writes the element-wise mean of the models' weights to `out`, with the first model's config and
    tokenizer; the models must share every tensor name and shape."""
    from safetensors.torch import load_file, save_file

    configs = [{k: v for k, v in json.loads((m / "config.json").read_text()).items() if k not in _UNSHARED} for m in models]
    for m, c in zip(models[1:], configs[1:]):
        if c != configs[0]:
            diff = sorted(k for k in set(c) | set(configs[0]) if c.get(k) != configs[0].get(k))
            raise ValueError(f"{m} has another config than {models[0]} ({', '.join(diff)})")
    states = []
    for m in models:
        try:
            states.append(load_file(str(m / "model.safetensors")))
        except Exception as e:  # missing, empty, truncated or not a file
            raise ValueError(f"cannot read {m / 'model.safetensors'}: {e}") from None
    names = set(states[0])
    for m, s in zip(models[1:], states[1:]):
        if set(s) != names or any(s[k].shape != states[0][k].shape for k in names):
            raise ValueError(f"{m} does not have the same tensors as {models[0]}")
    mean = {k: (sum(s[k].float() for s in states) / len(states)).to(states[0][k].dtype).contiguous() for k in names}
    out.mkdir(parents=True, exist_ok=True)
    for f in models[0].iterdir():
        if f.is_file() and f.suffix in (".json", ".jinja") and f.name not in ("iterations.json", "training.json"):
            shutil.copyfile(f, out / f.name)  # new files: the umask's mode, as the weights get
    save_file(mean, str(out / "model.safetensors"), metadata={"format": "pt"})
    from app.training.base import like_the_rest

    like_the_rest(out)  # safetensors writes 0600: the weights get the umask's mode too, as the configs did
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", type=model_dir, help="two or more HF model directories of one architecture")
    ap.add_argument("--out", type=writable_dir, required=True, help="a new or empty directory")
    a = ap.parse_args(argv)
    if len(a.models) < 2:
        ap.error("give at least two models to average")
    if any(a.out.resolve() == m.resolve() for m in a.models):
        ap.error(f"--out {a.out} is one of the models: write the soup to a new directory")
    if any(a.out.iterdir()):
        ap.error(f"--out {a.out} is not empty: write the soup to a new directory")
    try:
        soup(a.models, a.out)
    except (ValueError, OSError) as e:
        ap.exit(2, f"{ap.prog}: error: {e}\n")
    print(a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
