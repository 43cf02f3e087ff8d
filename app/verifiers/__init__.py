"""Verifiers: oracles that check an answer without knowing it (issue 20). Built-in checks by name
(`builtin.py`), the operator's verifier endpoints (`remote.py`, configured in `endpoints.py`), and
the registry that turns a request's `verifier` object into an `app.refine.oracles.Oracle`
(`registry.py`), counting every call in metrics.

    .venv/bin/python -m pytest -q tests/refine/test_oracles_builtin.py tests/api/test_verifiers.py
"""
