"""The policy facts in SQLite (DNC register, consent, suppression) and `smsgw dnc import` on a real file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from smsgw.cli import main
from smsgw.pdu.constants import GatewayError
from smsgw.scheduler.policy import PolicyFacts, check_recipient, check_recipients, record_opt_out
from smsgw.scheduler.policy_store import SqlitePolicyFacts


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "smsgw.db"
    sqlite3.connect(path).close()
    return path


def test_facts_survive_reopening_and_tables_are_created_idempotently(db: Path) -> None:
    facts = SqlitePolicyFacts.open(db)
    assert facts.add_dnc(["447700900123", "447700900124", "447700900123"], source="t", batch_size=2) == 2
    assert facts.suppress("acme", "447700900200")
    assert not facts.suppress("acme", "447700900200")
    assert facts.add_consent("acme", "447700900123")
    facts.close()
    reopened: PolicyFacts = SqlitePolicyFacts.open(db)
    assert reopened.is_on_dnc("447700900123") and not reopened.is_on_dnc("447700900999")
    assert reopened.has_consent("acme", "447700900123") and not reopened.has_consent("other", "447700900123")
    assert reopened.is_suppressed("acme", "447700900200") and not reopened.is_suppressed("other", "447700900200")


def test_rules_over_sqlite_facts(db: Path) -> None:
    facts = SqlitePolicyFacts.open(db)
    facts.add_dnc(["447700900123"], source="t")
    rejection = check_recipient(facts, "acme", "447700900123", promotional=True)
    assert rejection is not None and rejection.error_code is GatewayError.DO_NOT_CALL
    assert record_opt_out(facts, "acme", "447700900300", " stop ", ("STOP",))
    rejection = check_recipient(facts, "acme", "447700900300", promotional=False)
    assert rejection is not None and rejection.error_code is GatewayError.OPTED_OUT
    facts.close()


def test_batch_questions_over_sqlite_facts(db: Path) -> None:
    # More numbers than one IN (...) query takes, so the chunks are joined.
    numbers = [f"4477009{index:05d}" for index in range(1200)]
    facts = SqlitePolicyFacts.open(db)
    facts.add_dnc(numbers[::3], source="t")
    for number in numbers[::7]:
        facts.add_consent("acme", number)
    for number in numbers[::5]:
        facts.suppress("acme", number)
    facts.suppress("other", numbers[1])
    assert facts.dnc_among(numbers) == {n for n in numbers if facts.is_on_dnc(n)} == set(numbers[::3])
    assert facts.consented_among("acme", numbers) == set(numbers[::7])
    assert facts.suppressed_among("acme", numbers) == {n for n in numbers if facts.is_suppressed("acme", n)}
    assert facts.suppressed_among("other", numbers) == {numbers[1]} and facts.dnc_among([]) == set()
    recipients = [(number, index % 2 == 0) for index, number in enumerate(numbers)]
    assert check_recipients(facts, "acme", recipients) == [
        check_recipient(facts, "acme", number, promotional=promotional) for number, promotional in recipients
    ]
    facts.close()


def _dnc_numbers(db: Path) -> list[str]:
    with sqlite3.connect(db) as connection:
        return [row[0] for row in connection.execute("SELECT number FROM policy_dnc ORDER BY number")]


def test_dnc_import_cli(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv_file = tmp_path / "dnc.csv"
    csv_file.write_text(
        "\ufeffnumber,note\n+44 7700 900123,a\n07700 900124,b\nhello,c\n07700900123,dup\n\n+1 212\n", encoding="utf-8"
    )
    code = main(["dnc", "import", str(csv_file), "--db", str(db), "--default-country-code", "44", "--batch-size", "1"])
    out, err = capsys.readouterr()
    assert code == 1  # some lines were invalid; the others are imported
    assert _dnc_numbers(db) == ["447700900123", "447700900124"]
    assert f"{csv_file}:4: 'hello' is not a phone number" in err and f"{csv_file}:7: '+1 212' is too short" in err
    assert "3 numbers, 2 new on the register, 1 already on it or repeated, 2 invalid lines" in out

    csv_file.write_text("447700900124\n447700900125\n", encoding="utf-8")
    assert main(["dnc", "import", str(csv_file), "--db", str(db)]) == 0
    assert "2 numbers, 1 new on the register, 1 already on it or repeated, 0 invalid lines" in capsys.readouterr().out
    assert _dnc_numbers(db) == ["447700900123", "447700900124", "447700900125"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--default-country-code", "4x"], "--default-country-code: default country code '4x'"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
    ],
)
def test_dnc_import_bad_options(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    csv_file = tmp_path / "dnc.csv"
    csv_file.write_text("447700900124\n", encoding="utf-8")
    assert main(["dnc", "import", str(csv_file), "--db", str(db), *extra]) == 2
    assert message in capsys.readouterr().err
    assert db.stat().st_size == 0  # nothing written


def test_dnc_import_missing_files(tmp_path: Path, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dnc", "import", str(tmp_path / "none.csv"), "--db", str(db)]) == 2
    assert "none.csv" in capsys.readouterr().err
    csv_file = tmp_path / "dnc.csv"
    csv_file.write_text("447700900124\n", encoding="utf-8")
    assert main(["dnc", "import", str(csv_file), "--db", str(tmp_path / "typo.db")]) == 2
    assert "no such store" in capsys.readouterr().err
    assert not (tmp_path / "typo.db").exists()


def test_dnc_consent_cli(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    numbers = ["07700 900123", "+44 7700 900124"]
    argv = ["dnc", "consent", "acme", *numbers, "--db", str(db), "--default-country-code", "44"]
    assert main(argv) == 0
    assert "447700900123: consent for acme recorded" in capsys.readouterr().out
    assert main(argv) == 0
    assert "447700900124: consent for acme already recorded" in capsys.readouterr().out
    facts = SqlitePolicyFacts.open(db)
    facts.add_dnc(["447700900123"], source="t")
    assert check_recipient(facts, "acme", "447700900123", promotional=True) is None
    assert main([*argv, "--remove"]) == 0
    assert "447700900123: consent for acme withdrawn" in capsys.readouterr().out
    rejection = check_recipient(facts, "acme", "447700900123", promotional=True)
    assert rejection is not None and rejection.error_code is GatewayError.DO_NOT_CALL
    facts.close()
    assert main(["dnc", "consent", "acme", "12", "--db", str(db)]) == 2
    assert "'12' is not a phone number" in capsys.readouterr().err


def test_dnc_import_survives_stray_bytes_and_stops_on_a_broken_file(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_file = tmp_path / "dnc.csv"
    csv_file.write_bytes(b"447700900123,Jos\xe9\n4477009\xe901\n")  # cp1252 in a note, and in a number
    assert main(["dnc", "import", str(csv_file), "--db", str(db)]) == 1
    assert f"{csv_file}:2: '4477009\ufffd01' is not a phone number" in capsys.readouterr().err
    assert _dnc_numbers(db) == ["447700900123"]

    csv_file.write_bytes(b"447700900124\n447700900125\n447700900126," + b"x" * 200_000 + b"\n")
    assert main(["dnc", "import", str(csv_file), "--db", str(db), "--batch-size", "1"]) == 2
    assert "the import stopped there" in capsys.readouterr().err
    assert _dnc_numbers(db) == ["447700900123", "447700900124", "447700900125"]

    not_a_db = tmp_path / "not.db"
    not_a_db.write_bytes(b"x" * 4096)
    assert main(["dnc", "import", str(csv_file), "--db", str(not_a_db)]) == 2
    assert "not a database" in capsys.readouterr().err
