"""All settings in one place: `Settings` reads `RISE_*` environment variables (and `.env`).

    RISE_MODEL=models/base-synth RISE_PORT=9000 rise serve
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT / "models" / "rise-synth"
BASE_MODEL = ROOT / "models" / "base-synth"


def default_model() -> Path:
    """The shipped RISE model, or the base model while no RISE model is shipped."""
    return DEFAULT_MODEL if (DEFAULT_MODEL / "config.json").is_file() else BASE_MODEL


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RISE_", env_file=".env", extra="ignore")

    # model and engine
    model: Path = Field(default_factory=default_model, description="HF model directory")
    model_name: str | None = Field(None, description="name served in /v1/models (default: the directory name)")
    engine: Literal["hf", "vllm", "openai"] = "hf"
    device: str | None = Field(None, description="torch device for the embedded engine (default: cuda if present)")
    max_batch_size: int = Field(32, ge=1, le=4096)
    base_url: str | None = Field(None, description="upstream for --engine openai")
    api_key_upstream: str | None = None

    # service
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    log_level: str = "info"

    # refinement defaults and caps
    task: Literal["synthetic", "gsm8k", "math"] = Field("synthetic", description="answer format family")
    default_turns: int = Field(5, ge=1)
    max_turns_cap: int = Field(10, ge=1, description="largest max_turns a request may ask for")
    max_samples_cap: int = Field(8, ge=1, description="largest samples_per_turn (and n) a request may ask for")
    max_tokens_cap: int = Field(512, ge=1, description="largest max_tokens per turn")
    default_max_tokens: int = Field(160, ge=1)
    max_question_chars: int = Field(20_000, ge=1)

