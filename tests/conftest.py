"""Shared test helpers for the whole suite."""

from __future__ import annotations

import os
import shutil
import urllib.parse
import uuid
from collections.abc import Iterator

import pytest
import trio
from trio.testing import MockClock

# CI sets this (see .ci/run): a test whose third-party program is missing fails there instead of skipping, so an
# interop check cannot silently stop running.
REQUIRE_ENV = "SMSGW_REQUIRE_INTEROP"


def _required() -> bool:
    return os.environ.get(REQUIRE_ENV) == "1" or os.environ.get("CI", "").lower() == "true"


def require_program(name: str, package: str | None = None) -> str:
    """The path of program `name`; skips with one line naming what is missing, or fails when CI requires it.
    `package` is the Debian package that provides it (default: the same name)."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} is not installed (Debian package {package or name}; .ci/run installs it)"
    if _required():
        pytest.fail(f"{message}, and {REQUIRE_ENV}=1 or CI=true requires it", pytrace=False)
    pytest.skip(message)


# The PostgreSQL server the tests of the PostgreSQL engine create their databases on (trust auth on 127.0.0.1 on a
# developer's machine and in CI); each test gets a database of its own, dropped after it.
POSTGRES_ENV = "SMSGW_TEST_POSTGRES"
_POSTGRES_DEFAULT = "postgresql://127.0.0.1:5432/postgres"
_postgres_problem: list[str | None] = []  # filled once: None when reachable, else why not


def require_postgres() -> str:
    """The URL of the PostgreSQL server's maintenance database; skips with one line saying why it is not
    reachable, or fails when CI requires it (.ci/run starts the server)."""
    url = os.environ.get(POSTGRES_ENV, _POSTGRES_DEFAULT)
    if not _postgres_problem:
        try:
            import psycopg

            psycopg.connect(url, connect_timeout=3).close()
            _postgres_problem.append(None)
        except Exception as exc:  # ImportError or any connection failure: both mean "no PostgreSQL here"
            _postgres_problem.append(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}")
    problem = _postgres_problem[0]
    if problem is None:
        return url
    message = f"PostgreSQL not reachable at {url} ({problem}; set {POSTGRES_ENV} or start it)"
    if _required():
        pytest.fail(f"{message}, and {REQUIRE_ENV}=1 or CI=true requires it", pytrace=False)
    pytest.skip(message)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without a reachable PostgreSQL (and outside CI), its tests are left out with one line that says why, not
    one skip line each."""
    needing = [item for item in items if _needs_postgres(item)]
    if not needing or _required():
        return
    try:
        require_postgres()
        return
    except pytest.skip.Exception as skip:
        reason = str(skip.msg)
    config.hook.pytest_deselected(items=needing)
    items[:] = [item for item in items if item not in set(needing)]
    config.stash[_POSTGRES_LEFT_OUT] = f"{len(needing)} PostgreSQL tests not run: {reason}"


_POSTGRES_LEFT_OUT = pytest.StashKey[str]()


def _needs_postgres(item: pytest.Item) -> bool:
    """Takes a PostgreSQL database, or is a variant of a test for the PostgreSQL engine (parametrized on the
    engine, like the store contract's `store_factory`)."""
    callspec = getattr(item, "callspec", None)
    engines = () if callspec is None else callspec.params.values()
    return "postgresql" in engines or "postgres_url" in getattr(item, "fixturenames", ())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    line = terminalreporter.config.stash.get(_POSTGRES_LEFT_OUT, None)
    if line is not None:
        terminalreporter.write_line(line, yellow=True, bold=True)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty database on the test PostgreSQL server: its URL. Dropped after the test."""
    import psycopg

    admin = require_postgres()
    name = f"smsgw_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urllib.parse.urlsplit(admin)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db_clock() -> MockClock:
    """`MockClock(autojump_threshold=0)` that does not jump while a worker thread runs.

    The store runs SQLite in `trio.to_thread`; to plain autojump a task waiting for its thread looks idle, so the
    clock would leap to the next deadline (a retry, a purge tick) in the middle of a commit.
    """
    clock = MockClock(autojump_threshold=0)
    jump = clock._autojump

    def jump_when_idle() -> None:
        if not trio.to_thread.current_default_thread_limiter().borrowed_tokens:
            jump()

    clock._autojump = jump_when_idle  # type: ignore[method-assign]
    return clock
