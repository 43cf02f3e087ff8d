"""Shared by the engine tests: the embedded engine on the shipped model, one per module."""

import asyncio

import pytest

from app.engines.hf import HFEngine


@pytest.fixture(scope="module")
def engine(model_path):
    e = HFEngine(model_path, max_batch_size=16)
    yield e
    asyncio.run(e.aclose())
