"""A non-editable install (what the Dockerfile does) serves the shipped model from any directory
with no RISE_MODEL, and without a shipped model it refuses to start with a message on RISE_MODEL.

    .venv/bin/python -m pytest -q tests/deploy/test_installed_package.py

The package is built from a copy of the checkout (so that no build/ or egg-info lands in it) and
installed into a fresh virtual environment whose dependencies come from this one (a .pth line),
so nothing is downloaded and torch is not installed again.
"""

from __future__ import annotations

import os
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from app.api.launch import ROOT, spawn, stop, wait_until_answers
from app.config import MISSING, default_model, model_problem

pytestmark = pytest.mark.slow


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("RISE_", "PYTHON", "VIRTUAL_ENV"))}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A virtual environment with rise-serve installed from a wheel; returns its bin/ folder."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "app", src / "app", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "models", src / "models")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    py = venv / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # this environment's packages (torch, fastapi, pip, setuptools ...) but not its editable rise-serve
    Path(purelib, "_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    p = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--ignore-installed", "--no-cache-dir", str(src)],
                       capture_output=True, text=True, timeout=300, cwd=tmp, env=clean_env())
    assert p.returncode == 0, p.stdout + p.stderr
    shutil.rmtree(src)
    return venv / "bin"


def test_installed_rise_serve_finds_the_shipped_model_from_another_directory(installed, tmp_path):
    proc, url, log = spawn(command=[str(installed / "rise"), "serve"], cwd=tmp_path, env=clean_env(),
                           log_name="rise-installed")
    try:
        wait_until_answers(proc, url, log, "/ready", timeout=60)
    finally:
        assert stop(proc) == 0, log.read_text()[-2000:]
    shipped = installed.parent.resolve() / "share" / "rise-serve" / "models" / "rise-synth"
    assert f"serving {shipped} with the hf engine" in log.read_text()


def test_installed_rise_serve_without_a_shipped_model_says_to_set_rise_model(installed, tmp_path):
    share = installed.parent / "share" / "rise-serve" / "models"
    assert (share / "rise-synth" / "model.safetensors").is_file()  # the wheel carried the weights
    shutil.move(share, tmp_path / "moved")
    try:
        p = subprocess.run([str(installed / "rise"), "serve"], cwd=tmp_path, env=clean_env(), capture_output=True,
                           text=True, timeout=60)
    finally:
        shutil.move(tmp_path / "moved", share)
    assert p.returncode == 2 and "RISE_MODEL" in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_default_model_search_order(tmp_path, monkeypatch):
    monkeypatch.delenv("RISE_MODEL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_model() in (ROOT / "models" / "rise-synth", ROOT / "models" / "base-synth")
    (tmp_path / "models" / "base-synth").mkdir(parents=True)
    (tmp_path / "models" / "base-synth" / "config.json").write_text("{}")
    assert default_model() == tmp_path / "models" / "base-synth"  # the working directory's models/ first
    monkeypatch.setenv("RISE_MODEL", "/somewhere/else")
    assert default_model() == Path("/somewhere/else")
    monkeypatch.delenv("RISE_MODEL")
    monkeypatch.setattr("app.config.model_dirs", lambda: [tmp_path / "none"])
    assert default_model() == MISSING and "RISE_MODEL" in model_problem(MISSING)


def test_the_dockerfiles_build_check_passes_on_an_installed_package(installed):
    """The image build runs this check from / after `pip install`: the shipped model must be found."""
    check = re.search(r'cd / && python -c "([^"]+)"', (ROOT / "Dockerfile").read_text())
    assert check, "the Dockerfile checks that the installed package finds its model"
    p = subprocess.run([str(installed / "python"), "-c", check.group(1)], cwd="/", env=clean_env(),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
