"""`rise serve`: the HTTP service on uvicorn. Every option also comes from `RISE_*` variables.

    rise serve --model models/rise-synth --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    from app.config import Settings

    ap = argparse.ArgumentParser(prog="rise serve", description="Start the rise-serve HTTP service.")
    ap.add_argument("--model", help="HF model directory (RISE_MODEL)")
    ap.add_argument("--model-name", help="name to serve it under (RISE_MODEL_NAME)")
    ap.add_argument("--engine", choices=["hf", "vllm", "openai"], help="RISE_ENGINE")
    ap.add_argument("--base-url", help="upstream for --engine openai (RISE_BASE_URL)")
    ap.add_argument("--device", help="RISE_DEVICE")
    ap.add_argument("--host", help="RISE_HOST")
    ap.add_argument("--port", type=int, help="RISE_PORT")
    ap.add_argument("--task", choices=["synthetic", "gsm8k", "math"], help="answer format (RISE_TASK)")
    ap.add_argument("--log-level", help="RISE_LOG_LEVEL")
    a = ap.parse_args(argv)
    overrides = {k: v for k, v in vars(a).items() if v is not None}
    try:
        settings = Settings(**overrides)
    except Exception as e:  # noqa: BLE001 - pydantic's message names the bad setting
        ap.error(str(e))
    if not (settings.model / "config.json").is_file() and settings.engine != "openai":
        ap.error(f"{settings.model} is not a model directory (no config.json)")

    import uvicorn

    from app.api.main import create_app

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level,
                timeout_graceful_shutdown=30)
    return 0
