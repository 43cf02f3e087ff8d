"""The bench's served contenders start `rise serve` through `app.api.launch.start`; here it is the
same server forked from the tests' warm parent (tests/zygote.py), which spares each start 5 s of
imports. The bench's code path and the server's are unchanged."""

import pytest

from app.api import launch
from tests.servers import start_forked


@pytest.fixture(autouse=True)
def forked_servers(monkeypatch):
    monkeypatch.setattr(launch, "start", start_forked)
