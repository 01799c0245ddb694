"""Shared test helpers for the whole suite."""

from __future__ import annotations

import os
import shutil

import pytest

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
