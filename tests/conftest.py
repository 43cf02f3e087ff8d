import os
from pathlib import Path

import httpx
import pytest

from tests.servers import start_server, stop_server

ROOT = Path(__file__).resolve().parent.parent
BASE_MODEL = ROOT / "models" / "base-synth"
DATA_DIR = Path(os.environ.get("RISE_DATA_DIR", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def model_path() -> Path:
    from app.config import default_model

    return default_model()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "gsm8k" / "test.jsonl").is_file():
        pytest.fail(f"benchmark data not found in {DATA_DIR}; set RISE_DATA_DIR")
    return DATA_DIR


@pytest.fixture(scope="session")
def server():
    """One real server for the whole session, shared by the API, metrics and deploy tests."""
    proc, url, _log = start_server()
    yield url
    stop_server(proc)


@pytest.fixture(scope="session")
def server_log(server):
    port = server.rsplit(":", 1)[1]
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"rise-serve-{port}.log"


@pytest.fixture(scope="session")
def model_name(server) -> str:
    return httpx.get(f"{server}/v1/models").json()["data"][0]["id"]
