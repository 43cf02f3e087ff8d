import os
from pathlib import Path

import pytest

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
