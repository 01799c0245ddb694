"""tests/conftest.py's require_program: skip locally, fail when CI requires the program."""

from __future__ import annotations

import pytest

from tests.conftest import REQUIRE_ENV, require_program

MISSING = "smsgw-no-such-program"


def test_missing_program_skips_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"^{MISSING} is not installed \\(Debian package pkg;"):
        require_program(MISSING, "pkg")


@pytest.mark.parametrize(("name", "value"), [(REQUIRE_ENV, "1"), ("CI", "true")])
def test_missing_program_fails_when_required(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv(name, value)
    with pytest.raises(pytest.fail.Exception, match=f"{MISSING} is not installed"):
        require_program(MISSING)


def test_present_program_is_found() -> None:
    assert require_program("sh").endswith("/sh")
