"""Fixtures shared by the API tests."""

import pytest

from tests.verifier_server import VerifierServer


@pytest.fixture(scope="module")
def verifier():
    """A real verifier HTTP server (tests/verifier_server.py), one per test module."""
    with VerifierServer() as v:
        yield v
