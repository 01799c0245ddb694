"""What a new user trips over on the command line (issue 14): config checks before anything is opened, password
hashing, accounts and money, DNC files as spreadsheets export them, broken pipes, logging options."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from smsgw import cli
from smsgw.config import StoreConfig
from smsgw.passwords import verify_password
from smsgw.scheduler.sqlite_store import open_store


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _store(tmp_path: Path) -> str:
    path = str(tmp_path / "gw.db")

    async def create() -> None:
        async with open_store(path, StoreConfig(path=path)):
            pass

    trio.run(create)
    return path


def _config(tmp_path: Path, smpp: str = "", account: str = "", store: str | None = None) -> Path:
    path = tmp_path / "gw.toml"
    store_path = store if store is not None else str(tmp_path / "gw.db")
    path.write_text(
        f"[smpp]\n{smpp}\n"
        f'[[accounts]]\nsystem_id = "acme"\npassword = "acme-pw1"\n{account}\n'
        f'[[modems]]\nname = "sim1"\nport = "{tmp_path / "nowhere"}"\n'
        f'[[routes]]\nname = "all"\n'
        f'[store]\npath = "{store_path}"\n'
        '[billing]\ncurrency = "GBP"\n'
    )
    return path


# --- serve: config problems exit 2 naming the key, before the store or a modem is opened ----------------------


@pytest.mark.parametrize(
    ("smpp", "account", "key"),
    [
        ("port = 99999", "", "smpp.port"),
        ("port = -1", "", "smpp.port"),
        ("", 'allowed_networks = ["10.0.0.0/40"]', "accounts[0].allowed_networks[0]"),
        ("", 'password = "acme-secret"', "accounts[0].password"),
    ],
)
def test_serve_refuses_a_bad_config_before_opening_anything(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, smpp: str, account: str, key: str
) -> None:
    config = _config(tmp_path, smpp, account)
    if "acme-secret" in account:  # replaces the valid password
        config.write_text(config.read_text().replace('password = "acme-pw1"\n', ""))
    code, _, err = run(capsys, "serve", "--config", str(config))
    assert code == cli.EXIT_BAD_INPUT
    assert err.startswith(f"smsgw: error: {config}: {key}: ") and err.count("\n") == 1
    assert not (tmp_path / "gw.db").exists()


def test_serve_names_a_store_directory_that_does_not_exist(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    config = _config(tmp_path, store=str(missing / "gw.db"))
    code, _, err = run(capsys, "serve", "--config", str(config))
    assert code == cli.EXIT_BAD_INPUT
    assert f"store.path: directory {missing} does not exist" in err


# --- account ---------------------------------------------------------------------------------------------------


def test_hash_password_prints_the_config_line(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("acme-pw1\n"))
    code, out, _ = run(capsys, "account", "hash-password")
    assert code == cli.EXIT_OK
    assert out.startswith('password_hash = "scrypt$') and out.endswith('"\n')
    assert verify_password("acme-pw1", out.split('"')[1])


def test_hash_password_refuses_more_than_8_characters(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("acme-secret\n"))
    code, out, err = run(capsys, "account", "hash-password")
    assert (code, out) == (cli.EXIT_BAD_INPUT, "")
    assert "11 characters: SMPP 3.4 carries at most 8" in err


def test_balance_of_an_unknown_account_fails_and_money_has_its_currency(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = _store(tmp_path)
    code, out, err = run(capsys, "account", "balance", "nobody", "--db", db)
    assert (code, out) == (cli.EXIT_FAILURE, "")
    assert "'nobody' has no ledger rows" in err
    assert run(capsys, "account", "topup", "acme", "25.5", "--db", db)[1] == "acme 25.50 EUR\n"
    assert run(capsys, "account", "balance", "acme", "--db", db)[1] == "acme 25.50 EUR\n"
    config = _config(tmp_path)
    assert run(capsys, "account", "balance", "acme", "--config", str(config))[1] == "acme 25.50 GBP\n"
    code, out, err = run(capsys, "account", "balance", "nobody", "--config", str(config))
    assert (code, out) == (cli.EXIT_FAILURE, "")
    assert f"no account 'nobody' in {config}" in err
    code, _, err = run(capsys, "account", "ledger", "nobody", "--db", db)
    assert code == cli.EXIT_FAILURE


# --- dnc import ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        "number;name\n07700 900001;Ann\n07700 900002;Smith, Bob\n",
        "number\tname\n07700 900001\tAnn\n07700 900002\tBob\n",
        "number,name\n07700 900001,Ann\n07700 900002,\"Smith; Bob\"\n",
        "07700 900001\n07700 900002\n",
    ],
    ids=["semicolon", "tab", "comma", "one-column"],
)
def test_dnc_import_detects_the_delimiter(capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str) -> None:
    db = _store(tmp_path)
    numbers = tmp_path / "dnc.csv"
    numbers.write_text(content)
    code, out, err = run(capsys, "dnc", "import", str(numbers), "--db", db, "--default-country-code", "44")
    assert (code, err) == (cli.EXIT_OK, "")
    assert out == f"{numbers}: 2 numbers, 2 new on the register, 0 already on it or repeated, 0 invalid lines\n"


def test_dnc_import_reads_an_excel_workbook_and_counts_in_the_singular(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import openpyxl

    db = _store(tmp_path)
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in (("number", "name"), (447700900001, "Ann"), ("not a number", "Bob")):
        sheet.append(row)
    path = tmp_path / "dnc.xlsx"
    workbook.save(path)
    code, out, err = run(capsys, "dnc", "import", str(path), "--db", db)
    assert code == cli.EXIT_FAILURE  # one invalid line
    assert err.startswith(f"{path}:3: ")
    assert out == f"{path}: 1 number, 1 new on the register, 0 already on it or repeated, 1 invalid line\n"


# --- callbacks, pdu, pipes -------------------------------------------------------------------------------------


def test_callbacks_retry_names_an_unknown_id(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "callbacks", "retry", "42", "--db", _store(tmp_path))
    assert code == cli.EXIT_FAILURE
    assert "callback 42: no such callback" in err
    assert out == "requeued 0 failed callbacks\n"


def _smsgw(*argv: str, stdout: int | None = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smsgw", *argv], stdout=stdout, stderr=subprocess.PIPE, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


@pytest.mark.parametrize(
    "argv",
    [
        ["history", "export", "--from", "2026-01-01", "--to", "2026-01-02"],
        ["pdu", "decode", "0011000B916407281553F80000AA0AE8329BFD4697D9EC37"],
    ],
    ids=["history-export", "pdu-decode"],
)
def test_a_reader_that_went_away_is_no_traceback(tmp_path: Path, argv: list[str]) -> None:
    if argv[0] == "history":
        argv = [*argv, "--db", _store(tmp_path)]
    read_end, write_end = os.pipe()
    os.close(read_end)  # as `| head` does once it has its lines
    try:
        result = _smsgw(*argv, stdout=write_end)
    finally:
        os.close(write_end)
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
    assert result.returncode == cli.EXIT_OK


def test_send_to_a_closed_port_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    result = _smsgw("send", "--port", str(port), "--system-id", "a", "--password", "x", "--to", "+447700900001",
                    "--text", "hi")
    assert result.returncode == cli.EXIT_FAILURE
    assert result.stderr.startswith(f"smsgw: send failed: cannot connect to 127.0.0.1:{port}: ")
    assert result.stderr.count("\n") == 1, result.stderr


def test_send_help_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["send", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: 2775)" in out and "(default: 300.0)" in out and "(default: None)" not in out


# --- logging options -------------------------------------------------------------------------------------------


def test_logging_options_go_before_or_after_the_command() -> None:
    parser = cli._build_parser()
    store = ["--db", "x.db"]
    assert parser.parse_args(["account", "balance", "a", *store]).log_level is None
    assert parser.parse_args(["--log-level", "DEBUG", "account", "balance", "a", *store]).log_level == "DEBUG"
    after = parser.parse_args(["account", "balance", "a", *store, "--log-level", "WARNING", "--log-format", "json"])
    assert (after.log_level, after.log_format) == ("WARNING", "json")
    assert parser.parse_args(["demo", "--log-file", "gw.log"]).log_file == "gw.log"


def test_json_log_lines() -> None:
    record = logging.LogRecord("smsgw.app", logging.INFO, __file__, 1, "gateway ready port=%d", (2775,), None)
    line = json.loads(cli._JsonFormatter().format(record))
    assert (line["level"], line["logger"], line["message"]) == ("INFO", "smsgw.app", "gateway ready port=2775")


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_store_migrate_creates_the_schema_once_and_says_its_version(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, request: pytest.FixtureRequest, engine: str
) -> None:
    from smsgw.scheduler.migrations import MIGRATIONS

    key = f'url = "{request.getfixturevalue("postgres_url")}"' if engine == "postgresql" else ""
    config = tmp_path / "smsgw.toml"
    config.write_text(f'[store]\npath = "{tmp_path / "smsgw.db"}"\n{key}\n')
    for _ in range(2):  # the second run finds it up to date
        code, out, _ = run(capsys, "store", "migrate", "--config", str(config))
        assert code == 0 and out.startswith(f"store schema version {len(MIGRATIONS)} ")
