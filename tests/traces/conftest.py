import pytest

from tests.pg import start_postgres


@pytest.fixture(scope="session")
def postgres():
    """One real PostgreSQL for the session (skipped loudly where none can be started)."""
    pg = start_postgres()
    yield pg
    pg.close()


@pytest.fixture
def pg_url(postgres):
    """A fresh database on the real PostgreSQL."""
    return postgres.new_database()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path):
    """A fresh store: an SQLite file, and a new database on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'traces.db'}"
    return request.getfixturevalue("pg_url")
