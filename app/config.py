"""All settings in one place: `Settings` reads `RISE_*` environment variables (and `.env`).

    RISE_MODEL=models/base-synth RISE_PORT=9000 rise serve
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.verifiers.endpoints import VerifierEndpoint, parse_verifiers

ROOT = Path(__file__).resolve().parent.parent  # the source checkout, when app/ sits next to models/
SHIPPED = ("rise-synth", "base-synth")  # the RISE model first; the base model while no RISE model is shipped
MISSING = Path("models") / SHIPPED[0]  # what default_model() answers when no shipped model is found


def model_dirs() -> list[Path]:
    """Where shipped models are looked for, in order: the working directory's models/, the source
    checkout's, then where `pip install` puts them (share/rise-serve/models under the install
    scheme's data path, the environment's prefix or the user's base; see pyproject.toml's
    data-files). Debian's pip, for one, installs into /usr/local while sys.prefix is /usr."""
    share = Path("share") / "rise-serve" / "models"
    data = [Path(sysconfig.get_path("data")), Path(sys.prefix), Path(site.getuserbase())]
    return list(dict.fromkeys([Path.cwd() / "models", ROOT / "models", *(d / share for d in data)]))


def default_model() -> Path:
    """RISE_MODEL where set, else the first shipped model in model_dirs(), else MISSING (which
    `model_problem` refuses with a message on setting RISE_MODEL)."""
    if os.environ.get("RISE_MODEL"):
        return Path(os.environ["RISE_MODEL"])
    for folder in model_dirs():
        for name in SHIPPED:
            if (folder / name / "config.json").is_file():
                return folder / name
    return MISSING


RESERVED_HEADERS = {"authorization", "host", "content-length", "content-type", "content-encoding", "transfer-encoding",
                    "connection", "keep-alive", "upgrade", "te", "trailer", "expect", "accept", "accept-encoding",
                    "cookie", "proxy-authorization", "user-agent"}  # not a session header (RISE_UPSTREAM_SESSION_HEADER)


def model_problem(path: Path | str) -> str | None:
    """Why `path` is not an HF model directory (None when it is one)."""
    try:
        if (Path(path) / "config.json").is_file():
            return None
    except OSError as e:  # a name too long for the file system, a directory it may not read, ...
        return f"{path} cannot be looked up as a model directory: {e.strerror or type(e).__name__}"
    if Path(path) == MISSING:
        looked = ", ".join(str(d) for d in model_dirs())
        return (f"no shipped model found (looked in {looked}): set RISE_MODEL (or --model) "
                "to an HF model directory")
    return f"{path} is not a model directory (no config.json)"


EFFORT_LEVELS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")  # OpenAI's `reasoning_effort`


class EffortRule(BaseModel):
    """What one `reasoning_effort` level sets: the turns to run (capped by RISE_MAX_TURNS_CAP) and
    the early-stopping rule (app/refine/policy.py). Written as a bare number N, read as
    {"max_turns": N} (no early stopping)."""

    model_config = ConfigDict(extra="forbid")
    max_turns: int = Field(ge=1)
    early_stop: Literal["none", "agree", "settled", "confident"] = "none"

    @model_validator(mode="after")
    def _rule_can_apply(self):
        if self.early_stop == "agree" and self.max_turns < 2:
            raise ValueError("early_stop 'agree' needs max_turns of at least 2 (two turns to agree)")
        return self


# From `rise eval --compute` on the validation split with the default model (docs/adaptive-compute.md):
# `confident` (mean >= 0.99) keeps ~28% of K=5's tokens, `agree` ~48%, `settled` ~70%, each within a
# point of K=5's accuracy; `none` (one turn) skips the re-check, 40 points below.
DEFAULT_EFFORT = {"none": 1, "minimal": {"max_turns": 5, "early_stop": "confident"},
                  "low": {"max_turns": 5, "early_stop": "agree"}, "medium": {"max_turns": 5, "early_stop": "settled"},
                  "high": 5, "xhigh": 8, "max": 10}


def _rule(value) -> dict:
    return {"max_turns": value} if isinstance(value, int) and not isinstance(value, bool) else value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RISE_", env_file=".env", extra="ignore")

    # model and engine
    model: Path = Field(default_factory=default_model, description="HF model directory")
    model_name: str | None = Field(None, description="name served in /v1/models (default: the directory name)")
    engine: Literal["hf", "vllm", "openai"] = "hf"
    device: str | None = Field(None, description="torch device for the embedded engine (default: cuda if present)")
    max_batch_size: int = Field(32, ge=1, le=4096, description="sequences the embedded engine decodes at once")
    cuda_graphs: bool = Field(True, description="the embedded engine decodes with static shapes replayed as CUDA "
                              "graphs (captured at start-up; only on CUDA); false: the eager step")
    prefix_cache_mb: float = Field(256, ge=0, description="memory for the embedded engine's prefix KV cache "
                                   "(turn k reuses turn k-1's prompt and answer); 0 turns it off")
    speculative: bool = Field(True, description="prompt-lookup speculation: the embedded engine drafts up to "
                              "speculative_tokens tokens per sequence from its own context (a later turn repeats the "
                              "previous attempt in its prompt) and checks them in one forward pass, output unchanged; "
                              "a request's `speculative` overrides it; --engine vllm: vLLM's ngram speculative_config, "
                              "only when set to true explicitly")
    speculative_tokens: int = Field(8, ge=1, le=64, description="the most tokens a sequence drafts per step (k)")
    speculative_ngram_min: int = Field(2, ge=1, le=32, description="the shortest n-gram looked up to draft")
    speculative_ngram_max: int = Field(4, ge=1, le=32, description="the longest n-gram looked up (tried first)")
    speculative_max_batch: int = Field(4, ge=0, le=4096, description="a decode step with more sequences than this "
                                       "drafts nothing (a wide batch already fills the step); 0: no limit")

    @model_validator(mode="after")
    def _ngram_sizes(self):
        if self.speculative_ngram_min > self.speculative_ngram_max:
            raise ValueError(f"RISE_SPECULATIVE_NGRAM_MIN ({self.speculative_ngram_min}) must not exceed "
                             f"RISE_SPECULATIVE_NGRAM_MAX ({self.speculative_ngram_max})")
        return self

    def speculation(self):
        """The engine's speculation settings (app/engines/speculative.py). On by default for the embedded
        engine (measured: docs/results/speculative-cpu.md); vLLM's own n-gram speculation (engine-wide,
        without the batch limit) only where RISE_SPECULATIVE=true is set."""
        from app.engines.speculative import SpecConfig

        enabled = self.speculative and (self.engine != "vllm" or "speculative" in self.model_fields_set)
        return SpecConfig(enabled, self.speculative_tokens, self.speculative_ngram_min,
                          self.speculative_ngram_max, self.speculative_max_batch)

    base_url: str | None = Field(None, description="upstream for --engine openai (an OpenAI-compatible /v1 URL)")
    api_key_upstream: str | None = Field(None, description="bearer key for the upstream")
    upstream_session_header: str = Field("X-Session-ID", pattern=r"^([!#$%&'*+.^_`|~0-9A-Za-z-]+)?$",
                                         description="header carrying each turn's session key to the upstream (one "
                                         "key per refinement and sample) for a router's affinity; empty: none sent")
    @field_validator("upstream_session_header")
    @classmethod
    def _session_header(cls, v: str) -> str:
        if v.lower() in RESERVED_HEADERS:
            raise ValueError(f"{v!r} is a header every upstream call needs as it is (its key, framing or type): "
                             "name another, e.g. X-Session-ID")
        return v

    turn_retries: int = Field(1, ge=0, le=5, description="times a turn is run again when the engine broke off "
                              "mid-turn (reset, cut stream, 5xx) and none of the turn reached the client yet")
    engine_args: dict = Field(default_factory=dict, description="vLLM engine arguments, as JSON "
                              "(e.g. {\"tensor_parallel_size\": 2, \"max_model_len\": 4096})")

    lora: Annotated[dict[str, str | None], NoDecode] = Field(
        default_factory=dict, description="LoRA adapters served beside the model, each chosen by a request's "
        "`model`: NAME=PATH items (comma-separated) or a JSON object name -> PEFT adapter directory; with "
        "--engine openai bare names the upstream serves (app/engines/adapters.py)")

    @field_validator("lora", mode="before")
    @classmethod
    def _lora(cls, v):
        from app.engines.adapters import parse_lora

        return parse_lora(v)

    @model_validator(mode="after")
    def _engine_needs(self):
        if self.engine == "openai":
            from app.engines.openai_remote import check_base_url

            check_base_url(self.base_url)
        if self.lora:
            from app.engines.adapters import check_adapters

            check_adapters(self.lora, self.engine, self.model_name or Path(self.model).name)
        return self

    # service
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    log_level: str = "info"

    # refinement defaults and caps
    task: Literal["synthetic", "gsm8k", "math"] = Field("synthetic", description="answer format family")
    default_turns: int = Field(5, ge=1)
    max_turns_cap: int = Field(10, ge=1, description="largest max_turns a request may ask for")
    reasoning_effort_levels: dict[Literal[EFFORT_LEVELS], EffortRule] = Field(
        default_factory=lambda: {k: EffortRule(**_rule(v)) for k, v in DEFAULT_EFFORT.items()},
        description="the chat API's `reasoning_effort` levels, each a number of turns or {\"max_turns\": N}, "
                    "as JSON; a level left out keeps its default")
    reasoning_field: Literal["both", "reasoning", "reasoning_content"] = Field(
        "both", description="the chat API's field for the turns (reasoning text): vLLM's `reasoning`, the older "
                            "`reasoning_content`, or both")
    max_samples_cap: int = Field(8, ge=1, description="largest samples_per_turn (and n) a request may ask for")
    max_tokens_cap: int = Field(512, ge=1, description="largest max_tokens per turn")
    default_max_tokens: int = Field(160, ge=1)
    sampled_temperature: float = Field(0.7, gt=0, le=2, description="the temperature of a request that leaves "
                                       "it out yet draws several samples of one prompt (samples_per_turn or n "
                                       "above 1); one draw per prompt is greedy (0) by default "
                                       "(app/refine/temperature.py)")
    max_question_chars: int = Field(20_000, ge=1)
    confidence_form: Literal["mean", "tail", "min"] = Field("mean", description="a sample's confidence: exp of the "
                                                            "mean token log-prob of its whole attempt, of its last 8 "
                                                            "tokens, or its least likely token")
    confidence_threshold: float = Field(0.99, gt=0, le=1, description="early_stop=confident stops once a turn's "
                                        "confidence reaches it")
    answer_check_timeout_s: float = Field(1.0, gt=0, le=60, description="time cap of one answer parse or comparison "
                                          "(math-verify); past it: not equivalent, counted in metrics")
    answer_check_workers: int = Field(2, ge=1, le=64, description="processes that run answer checks off the "
                                      "event loop")
    verifiers: Annotated[dict[str, VerifierEndpoint], NoDecode] = Field(
        default_factory=dict, description="verifier endpoints a request may name (`verifier: {\"name\": ...}`): a "
        "JSON object or a file holding one, name -> {\"url\", \"timeout_s\", \"headers\"} (app/verifiers/endpoints.py)")
    _verifiers = field_validator("verifiers", mode="before")(parse_verifiers)

    # reliability and security
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, validate_default=False, description="accepted bearer keys for /v1/* "
                                "(JSON list or comma-separated); empty: no authentication")
    api_keys_file: Path | None = Field(None, description="file with one accepted key per line (# starts a comment line)")
    admin_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, description="bearer keys for the admin "
                                                       "routes (POST /admin/reload), comma-separated; empty: off")

    @field_validator("admin_keys", mode="before")
    @classmethod
    def _admin_keys(cls, v):
        keys = [k.strip() for k in v.split(",") if k.strip()] if isinstance(v, str) else v
        for k in keys or ():
            check_key(k, "RISE_ADMIN_KEYS")
        return keys
    max_in_flight: int = Field(64, ge=1, description="refinements served at once")
    max_queue: int = Field(256, ge=0, description="refinements waiting for a slot; past it: 429")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="largest request body")
    max_connections: int = Field(2048, ge=1, description="open connections (and requests) uvicorn accepts at once; "
                                 "past it: 503")
    body_timeout_s: float = Field(10.0, gt=0, description="time a client has to send its whole request body "
                                  "(past it: 408)")
    request_timeout_s: float = Field(300.0, gt=0, description="deadline of one refinement (a request's "
                                     "`timeout` may only shorten it)")
    shutdown_grace_s: float = Field(30.0, ge=0, description="how long in-flight requests may finish after SIGTERM")
    drain_ready_delay_s: float = Field(5.0, ge=0, le=300, description="after SIGTERM, how long /ready answers 503 "
                                       "while new requests are still served, so that load balancers stop sending "
                                       "before the drain refuses them")
    switch_interval_ms: float = Field(1.0, gt=0, le=100, description="the interpreter's thread switch interval "
                                      "(sys.setswitchinterval) while serving: how long the event loop may wait "
                                      "for the GIL behind a worker thread's Python (a verifier's check, "
                                      "tokenizing) each time it wants it back; CPython's default is 5 ms")
    engine_failures_unready: int = Field(5, ge=1, description="consecutive engine failures that flip /ready")
    log_json: bool = Field(False, description="structured JSON log lines")
    log_questions: bool = Field(False, description="include questions in logs (never references)")

    # stored traces (app/traces/): off unless RISE_TRACES_URL is set
    traces_url: str | None = Field(None, description="SQLAlchemy URL of the trace store: sqlite:///path.db on one "
                                   "machine, postgresql+psycopg://user@host/db for replicas; unset: traces off")
    traces_max_rows: int = Field(100_000, ge=1, description="traces kept; past it the oldest go first")
    traces_max_age_s: float = Field(30 * 86400, gt=0, description="traces older than this are deleted")
    traces_keep_references: bool = Field(False, description="store the oracle's reference (and feedback's) with "
                                         "the trace, which training needs; no route ever returns it")
    traces_queue: int = Field(1000, ge=1, le=1_000_000, description="traces waiting to be written; past it the "
                              "newest is dropped (counted in rise_traces_dropped_total)")
    traces_retry_s: float = Field(10.0, ge=0, le=600, description="how long a failing write is retried before "
                                  "its traces are dropped (counted with the reason)")

    @field_validator("traces_url", mode="before")
    @classmethod
    def _traces_url(cls, v):
        if isinstance(v, str) and not v.strip():
            return None
        if v is not None:
            from app.traces.store import check_url

            check_url(v)
        return v

    @field_validator("reasoning_effort_levels", mode="before")
    @classmethod
    def _effort_levels(cls, v):
        if isinstance(v, dict):  # a bare number is the turns; a level left out keeps its default
            return {**{k: _rule(r) for k, r in DEFAULT_EFFORT.items()}, **{k: _rule(r) for k, r in v.items()}}
        return v

    def effort(self, level: str) -> EffortRule:
        """The rule of a `reasoning_effort` level, its turns capped by RISE_MAX_TURNS_CAP."""
        rule = self.reasoning_effort_levels[level]
        return rule.model_copy(update={"max_turns": min(rule.max_turns, self.max_turns_cap)})

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, v):
        if isinstance(v, str):
            v = v.strip()
            if v.startswith("["):
                import json

                v = json.loads(v)
                if not isinstance(v, list) or not all(isinstance(k, str) for k in v):
                    raise ValueError("RISE_API_KEYS as JSON must be a list of strings")
                return v
            return [k.strip() for k in v.split(",") if k.strip()]
        return v

    @field_validator("api_keys")
    @classmethod
    def _check_keys(cls, v: list[str]) -> list[str]:
        if not v:  # given, yet no key: never read as "serve without keys"
            raise ValueError("RISE_API_KEYS is set but holds no key; unset it to serve without keys")
        for k in v:
            check_key(k, "RISE_API_KEYS")
        return v

    @field_validator("api_keys_file")
    @classmethod
    def _check_keys_file(cls, v: Path | None) -> Path | None:
        if v is not None:
            keys = _read_keys_file(v)
            if not keys:
                raise ValueError(f"RISE_API_KEYS_FILE {v} holds no key (only blank or # comment lines)")
            for k in keys:
                check_key(k, f"RISE_API_KEYS_FILE ({v})")
        return v

    def accepted_keys(self) -> list[str]:
        keys = list(self.api_keys)
        if self.api_keys_file is not None:
            keys += _read_keys_file(self.api_keys_file)
        return keys


def check_key(key: str, setting: str) -> None:
    """An accepted key is printable ASCII with no spaces: an empty key would match a request with
    no header, and a non-ASCII one only a client that encodes headers as latin-1."""
    if not key.strip():
        raise ValueError(f"{setting} holds an empty or blank key; remove it (an empty key would turn "
                         "authentication off)")
    if not all(33 <= ord(c) <= 126 for c in key):
        raise ValueError(f"{setting} holds a key with spaces, control or non-ASCII characters; keys must be "
                         "printable ASCII")


def _read_keys_file(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"RISE_API_KEYS_FILE {path} cannot be read: {e}") from None
    lines = [line.strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]

