"""All settings in one place: `Settings` reads `RISE_*` environment variables (and `.env`).

    RISE_MODEL=models/base-synth RISE_PORT=9000 rise serve
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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
    max_batch_size: int = Field(32, ge=1, le=4096, description="sequences the embedded engine decodes at once")
    prefix_cache_mb: float = Field(256, ge=0, description="memory for the embedded engine's prefix KV cache "
                                   "(turn k reuses turn k-1's prompt and answer); 0 turns it off")
    base_url: str | None = Field(None, description="upstream for --engine openai (an OpenAI-compatible /v1 URL)")
    api_key_upstream: str | None = Field(None, description="bearer key for the upstream")
    engine_args: dict = Field(default_factory=dict, description="vLLM engine arguments, as JSON "
                              "(e.g. {\"tensor_parallel_size\": 2, \"max_model_len\": 4096})")

    @model_validator(mode="after")
    def _engine_needs(self):
        if self.engine == "openai":
            from app.engines.openai_remote import check_base_url

            check_base_url(self.base_url)
        return self

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

    # reliability and security
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, description="accepted bearer keys for /v1/* "
                                "(JSON list or comma-separated); empty: no authentication")
    api_keys_file: Path | None = Field(None, description="file with one accepted key per line")
    max_in_flight: int = Field(64, ge=1, description="refinements served at once")
    max_queue: int = Field(256, ge=0, description="refinements waiting for a slot; past it: 429")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="largest request body")
    request_timeout_s: float = Field(300.0, gt=0, description="deadline of one refinement (a request's "
                                     "`timeout` may only shorten it)")
    shutdown_grace_s: float = Field(30.0, ge=0, description="how long in-flight requests may finish after SIGTERM")
    engine_failures_unready: int = Field(5, ge=1, description="consecutive engine failures that flip /ready")
    log_json: bool = Field(False, description="structured JSON log lines")
    log_questions: bool = Field(False, description="include questions in logs (never references)")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, v):
        if isinstance(v, str):
            v = v.strip()
            if v.startswith("["):
                import json

                return json.loads(v)
            return [k.strip() for k in v.split(",") if k.strip()]
        return v

    def accepted_keys(self) -> list[str]:
        keys = list(self.api_keys)
        if self.api_keys_file is not None:
            keys += [line.strip() for line in self.api_keys_file.read_text().splitlines() if line.strip()]
        return keys

