"""`rise serve`: the HTTP service on uvicorn. Every option also comes from `RISE_*` variables.

    rise serve --model models/rise-synth --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import argparse
import json
import logging


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def main(argv: list[str] | None = None) -> int:
    from app.api.process import AddressError, check_address, exit_on_sigterm_until_serving, run_server

    exit_on_sigterm_until_serving()
    from app.cli_args import LOG_LEVELS, log_level, port, readable_file
    from app.config import Settings, model_problem

    ap = argparse.ArgumentParser(prog="rise serve", description="Start the rise-serve HTTP service.")
    ap.add_argument("--model", help="HF model directory (RISE_MODEL)")
    ap.add_argument("--model-name", help="name to serve it under (RISE_MODEL_NAME)")
    ap.add_argument("--engine", choices=["hf", "vllm", "openai"], help="RISE_ENGINE")
    ap.add_argument("--base-url", help="upstream for --engine openai (RISE_BASE_URL)")
    ap.add_argument("--api-key-upstream", help="bearer key for the upstream (RISE_API_KEY_UPSTREAM)")
    ap.add_argument("--engine-args", type=_json_object, help='vLLM engine arguments as JSON (RISE_ENGINE_ARGS), '
                    'e.g. \'{"tensor_parallel_size": 2, "max_model_len": 4096}\'')
    ap.add_argument("--lora", action="append", metavar="NAME=PATH",
                    help="serve a PEFT LoRA adapter beside the model, chosen by a request's `model` NAME (repeat for "
                         "more; RISE_LORA); --engine openai: a bare NAME the upstream serves")
    ap.add_argument("--device", help="RISE_DEVICE")
    ap.add_argument("--host", help="RISE_HOST")
    ap.add_argument("--port", type=port, help="RISE_PORT")
    ap.add_argument("--task", choices=["synthetic", "gsm8k", "math"], help="answer format (RISE_TASK)")
    ap.add_argument("--log-level", type=log_level, help="RISE_LOG_LEVEL")
    ap.add_argument("--log-json", action="store_const", const=True, help="JSON log lines (RISE_LOG_JSON)")
    ap.add_argument("--api-keys", help="comma-separated accepted keys (RISE_API_KEYS)")
    ap.add_argument("--api-keys-file", type=readable_file, help="file with one key per line (RISE_API_KEYS_FILE)")
    show_setting_defaults(ap, Settings)
    a = ap.parse_args(argv)
    overrides = {k: v for k, v in vars(a).items() if v is not None}
    try:
        settings = Settings(**overrides)
        settings.accepted_keys()  # RISE_API_KEYS_FILE too: read before anything loads
    except Exception as e:  # noqa: BLE001 - the message names the bad setting
        ap.error(settings_error(e))
    if settings.log_level.lower() not in LOG_LEVELS:
        ap.error(f"RISE_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {settings.log_level!r}")
    if settings.engine != "openai" and (problem := model_problem(settings.model)):
        ap.error(problem)
    try:
        check_address(settings.host, settings.port)
    except AddressError as e:
        ap.error(str(e))

    import uvicorn

    from app.api.drain import draining_server
    from app.api.logs import setup_logging
    from app.api.main import create_app

    setup_logging(settings.log_level, settings.log_json)
    if settings.engine != "openai":  # which model (the default is looked for in several places)
        logging.getLogger("rise.api").info("serving %s with the %s engine", settings.model.resolve(), settings.engine)
    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                            log_config=None, timeout_graceful_shutdown=settings.shutdown_grace_s,
                            limit_concurrency=settings.max_connections)
    return run_server(draining_server(config, app.state, settings.shutdown_grace_s, settings.drain_ready_delay_s),
                      engine_loaded=lambda: app.state.engine is not None)


def show_setting_defaults(ap: argparse.ArgumentParser, settings_class) -> None:
    """Each option's help ends with its setting's built-in default (the option and its `RISE_*`
    variable are left unset unless given, so that the variable still applies)."""
    for action in ap._actions:
        field = settings_class.model_fields.get(action.dest)
        if field is None or not action.help:
            continue
        value = field.default_factory() if field.default_factory is not None else field.default
        shown = "none" if value is None or value == {} or value == [] else str(value)
        action.help = f"{action.help} (default: {shown})".replace("%", "%%")


def settings_error(e: Exception) -> str:
    """What is wrong with the settings, without the values given (they may hold API keys)."""
    from pydantic import ValidationError

    if not isinstance(e, ValidationError):
        return str(e)
    parts = []
    for err in e.errors(include_input=False, include_url=False):
        where = ".".join(str(x) for x in err.get("loc", ()))
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "invalid settings: " + "; ".join(parts)
