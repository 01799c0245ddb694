"""`smsgw send`: the numbers file (normalisation itself is tested with the policy), receipt tracking, and the client against a small SMPP
responder on a real socket (hand-written with struct, so it shares no code with the client under test)."""

from __future__ import annotations

import io
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from smsgw import cli
from smsgw.client import (
    ClientSettings,
    Outcome,
    Recipient,
    ReceiptTracker,
    SubmitResult,
    format_summary,
    read_recipients,
    render_progress,
    send_batch,
    split_text,
    whole_text,
)


def test_numbers_file_reports_invalid_and_duplicate_lines() -> None:
    lines = ["number,name\n", "07700 900001,Ann\n", "\n", "# staff\n", "not-a-number\n", "+44 7700 900001\n",
             '"07700 900002","Smith, Bob"\n']
    result = read_recipients(lines, "44")
    assert [(r.line, r.number) for r in result.recipients] == [(2, "447700900001"), (7, "447700900002")]
    assert [(r.line, r.raw) for r in result.rejected] == [(5, "not-a-number"), (6, "+44 7700 900001")]
    assert result.rejected[1].reason == "duplicate of line 2"


def _result(number: str, *ids: str) -> SubmitResult:
    return SubmitResult(Recipient(1, number, number), ids, 0)


def test_tracker_aggregates_parts_and_accepts_early_receipts() -> None:
    tracker = ReceiptTracker()
    assert not tracker.receipt("b1", 2)  # receipt overtook its submit_sm_resp
    tracker.expect(_result("447700900001", "a1", "a2"))
    tracker.expect(_result("447700900002", "b1"))
    tracker.expect(_result("447700900003", "c1"))
    assert tracker.receipt("a1", 2)
    assert tracker.receipt("a1", 1) is True  # intermediate ENROUTE of our own message
    assert tracker.outcome("447700900001") is Outcome.PENDING
    assert tracker.receipt("a2", 5)
    assert not tracker.receipt("zz", 2)
    summary = tracker.summary()
    assert summary[Outcome.UNDELIVERABLE] == 1 and summary[Outcome.DELIVERED] == 1
    assert summary[Outcome.PENDING] == 1 and tracker.pending() == 1
    table = format_summary(summary)
    assert "undeliverable      1" in table and "total" in table and "rejected" not in table


def test_render_progress() -> None:
    assert render_progress(0, 4, width=4) == "[....] 0/4   0%"
    assert render_progress(3, 4, width=4) == "[###.] 3/4  75%"
    assert render_progress(4, 4, width=4) == "[####] 4/4 100%"


def test_long_text_is_split_into_udh_parts_without_breaking_escapes() -> None:
    parts = split_text("€" * 100)  # 200 septets: two parts, each escape pair kept whole
    assert len(parts) == 2
    assert all(p.esm_class == 0x40 and p.data_coding == 0 for p in parts)
    assert all(p.short_message[0] == 5 and p.short_message[6:].count(b"\x1b") * 2 == len(p.short_message[6:])
               for p in parts)
    (single,) = split_text("héllo ☃")
    assert single.data_coding == 8 and single.esm_class == 0 and single.short_message == "héllo ☃".encode("utf-16-be")


# --- a minimal SMSC on a real socket ----------------------------------------------------------------------------

_BIND_TRANSMITTER, _BIND_TRANSCEIVER, _SUBMIT_SM, _DELIVER_SM, _UNBIND, _ENQUIRE_LINK = (
    0x02, 0x09, 0x04, 0x05, 0x06, 0x15)
_RESP = 0x80000000
ESME_RINVDSTADR = 0x0B
ESME_RTHROTTLED = 0x58


@dataclass
class FakeSmsc:
    """Answers binds and submit_sm; a destination ending in 9 is refused, 7 throttled the first time, 8 expires,
    others are delivered."""

    listener: socket.socket
    submitted: list[tuple[str, int, bytes]] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)  # message_payload TLVs of the submissions
    receipt_ids: dict[int, str] = field(default_factory=dict)  # deliver_sm sequence -> receipted message id
    acknowledged_receipts: list[str] = field(default_factory=list)
    refused_receipts: list[str] = field(default_factory=list)
    unbound: bool = False

    def serve_one(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            sequence = 1000
            while True:
                header = _recv_exact(conn, 16)
                if not header:
                    return
                length, command_id, _status, seq = struct.unpack(">IIII", header)
                body = _recv_exact(conn, length - 16)
                if command_id in (_BIND_TRANSMITTER, _BIND_TRANSCEIVER):
                    conn.sendall(_pdu(command_id | _RESP, 0, seq, b"fake\0"))
                elif command_id == _SUBMIT_SM:
                    destination, registered, message = _parse_submit(body)
                    self.submitted.append((destination, registered, message))
                    self.payloads.append(_payload(body))
                    if destination.endswith("9"):
                        conn.sendall(_pdu(_SUBMIT_SM | _RESP, ESME_RINVDSTADR, seq, b"\0"))
                        continue
                    if destination.endswith("7") and [d for d, _, _ in self.submitted].count(destination) == 1:
                        conn.sendall(_pdu(_SUBMIT_SM | _RESP, ESME_RTHROTTLED, seq, b"\0"))
                        continue
                    message_id = f"m{len(self.submitted)}"
                    if registered:
                        # the receipt overtakes the response: the client must cope
                        sequence += 1
                        state = 3 if destination.endswith("8") else 2
                        self.receipt_ids[sequence] = message_id
                        conn.sendall(_receipt(sequence, destination, message_id, state))
                    conn.sendall(_pdu(_SUBMIT_SM | _RESP, 0, seq, message_id.encode() + b"\0"))
                    if registered:  # someone else's receipt: the client must leave it for other binds
                        sequence += 1
                        self.receipt_ids[sequence] = "foreign-1"
                        conn.sendall(_receipt(sequence, destination, "foreign-1", 2))
                elif command_id == _DELIVER_SM | _RESP:
                    (self.acknowledged_receipts if _status == 0 else self.refused_receipts).append(
                        self.receipt_ids[seq])
                elif command_id == _UNBIND:
                    self.unbound = True
                    conn.sendall(_pdu(_UNBIND | _RESP, 0, seq, b""))
                    return
                elif command_id == _ENQUIRE_LINK:
                    conn.sendall(_pdu(_ENQUIRE_LINK | _RESP, 0, seq, b""))


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return b""
        data += chunk
    return data


def _pdu(command_id: int, status: int, sequence: int, body: bytes) -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, status, sequence) + body


def _cstring(body: bytes, pos: int) -> tuple[str, int]:
    end = body.index(b"\0", pos)
    return body[pos:end].decode(), end + 1


def _parse_submit(body: bytes) -> tuple[str, int, bytes]:
    destination, registered, pos = _submit_fields(body)
    length = body[pos]
    return destination, registered, body[pos + 1: pos + 1 + length]


def _end_of_mandatory(body: bytes) -> int:
    _, _, pos = _submit_fields(body)
    return pos + 1 + body[pos]


def _submit_fields(body: bytes) -> tuple[str, int, int]:
    """destination_addr, registered_delivery, and the offset of sm_length."""
    _, pos = _cstring(body, 0)  # service_type
    _, pos = _cstring(body, pos + 2)  # source_addr after ton, npi
    destination, pos = _cstring(body, pos + 2)
    pos += 3  # esm_class, protocol_id, priority_flag
    _, pos = _cstring(body, pos)  # schedule_delivery_time
    _, pos = _cstring(body, pos)  # validity_period
    registered = body[pos]
    pos += 4  # registered_delivery, replace_if_present, data_coding, sm_default_msg_id
    return destination, registered, pos


def _payload(body: bytes) -> bytes:
    """The message_payload TLV (0x0424) after the mandatory fields, b"" when there is none."""
    tail = body[_end_of_mandatory(body):]
    while len(tail) >= 4:
        tag, length = struct.unpack(">HH", tail[:4])
        if tag == 0x0424:
            return tail[4:4 + length]
        tail = tail[4 + length:]
    return b""


def _receipt(sequence: int, destination: str, message_id: str, state: int) -> bytes:
    stat = {2: "DELIVRD", 3: "EXPIRED"}[state]
    text = f"id:{message_id} sub:001 dlvrd:001 submit date:2611231300 done date:2611231300 stat:{stat} err:000 text:"
    body = (b"\0" + b"\1\1" + destination.encode() + b"\0" + b"\0\0" + b"\0" + bytes([0x04, 0, 0]) + b"\0\0"
            + bytes([0, 0, 0, 0, len(text)]) + text.encode()
            + struct.pack(">HH", 0x001E, len(message_id) + 1) + message_id.encode() + b"\0"
            + struct.pack(">HHB", 0x0427, 1, state))
    return _pdu(_DELIVER_SM, 0, sequence, body)


@pytest.fixture
def smsc() -> Iterator[tuple[FakeSmsc, int]]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(20)
        fake = FakeSmsc(listener)
        thread = threading.Thread(target=fake.serve_one, daemon=True)
        thread.start()
        yield fake, listener.getsockname()[1]
        thread.join(timeout=20)


@pytest.fixture
def tls_smsc(tmp_path) -> Iterator[tuple[FakeSmsc, int, str]]:  # type: ignore[no-untyped-def]
    """The same SMSC behind TLS, with a self-signed certificate for 127.0.0.1."""
    import ssl
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with socket.create_server(("127.0.0.1", 0)) as plain, context.wrap_socket(plain, server_side=True) as listener:
        listener.settimeout(20)
        fake = FakeSmsc(listener)
        thread = threading.Thread(target=fake.serve_one, daemon=True)
        thread.start()
        yield fake, listener.getsockname()[1], str(cert)
        thread.join(timeout=20)


def test_cli_send_over_tls_verifies_the_certificate(tls_smsc: tuple[FakeSmsc, int, str], capsys) -> None:  # type: ignore[no-untyped-def]
    fake, port, cert = tls_smsc
    code = cli.main(["send", "--port", str(port), "--system-id", "acme", "--password", "x", "--to", "447700900001",
                     "--text", "over tls", "--tls", "--tls-ca", cert])
    assert code == cli.EXIT_OK, capsys.readouterr().err
    assert fake.submitted == [("447700900001", 0, b"over tls")] and fake.unbound


def _settings(port: int, window: int = 2) -> ClientSettings:
    return ClientSettings("127.0.0.1", port, "acme", "secret", window=window, response_timeout_s=10.0,
                          throttle_delay_s=0.01)


def test_batch_submits_with_window_and_reports_each_message(smsc: tuple[FakeSmsc, int]) -> None:
    fake, port = smsc
    recipients = [Recipient(i, n, n) for i, n in enumerate(["447700900001", "447700900009", "447700900007"])]
    out = io.StringIO()
    progress = io.StringIO()
    report = send_batch(_settings(port), recipients, split_text("a" * 200), wait_receipts_s=None, out=out,
                        progress=progress)
    # 447700900007's first part is throttled once and submitted again
    assert sorted(d for d, _, _ in fake.submitted) == ["447700900001"] * 2 + ["447700900007"] * 3 + [
        "447700900009"] * 2
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["447700900001\tOK\tm1,m2", "447700900009\tESME_RINVDSTADR\t"]
    number, status, ids = lines[2].split("\t")
    assert (number, status, len(ids.split(","))) == ("447700900007", "OK", 2)
    assert not report.all_accepted and report.outcomes is None
    assert progress.getvalue().endswith("3/3 100%\n")
    assert fake.unbound


def test_wait_receipts_summarises_and_leaves_foreign_receipts(smsc: tuple[FakeSmsc, int]) -> None:
    fake, port = smsc
    recipients = [Recipient(1, "447700900001", "447700900001"), Recipient(2, "447700911008", "447700911008")]
    report = send_batch(_settings(port, window=10), recipients, split_text("hi"), wait_receipts_s=10.0,
                        out=io.StringIO(), progress=None)
    assert report.outcomes is not None
    assert report.outcomes[Outcome.DELIVERED] == 1 and report.outcomes[Outcome.EXPIRED] == 1
    assert report.outcomes[Outcome.PENDING] == 0 and not report.all_delivered
    assert all(registered == 1 for _, registered, _ in fake.submitted)
    assert fake.acknowledged_receipts == ["m1", "m2"]
    # the first foreign receipt is refused; the second may arrive after the client unbound
    assert fake.refused_receipts[:1] == ["foreign-1"]


def test_cli_send_reports_bad_file_lines_and_exit_code(smsc: tuple[FakeSmsc, int], tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    fake, port = smsc
    numbers = tmp_path / "numbers.csv"
    numbers.write_text("07700 900001\nbogus\n07700 900002\n")
    code = cli.main(["send", "--port", str(port), "--system-id", "acme", "--password", "x", "--to-file",
                     str(numbers), "--default-country-code", "44", "--text", "hello"])
    captured = capsys.readouterr()
    assert code == cli.EXIT_FAILURE  # a line was not sent
    assert f"{numbers}:2: 'bogus' not sent" in captured.err
    assert [line.split("\t")[:2] for line in captured.out.splitlines()] == [
        ["447700900001", "OK"], ["447700900002", "OK"]]
    assert [m for _, _, m in fake.submitted] == [b"hello", b"hello"]


def test_cli_send_to_several_numbers_sends_each_with_its_own_line(smsc: tuple[FakeSmsc, int], capsys) -> None:  # type: ignore[no-untyped-def]
    """A repeated --to adds a destination (it once replaced the one before): each number gets its message and line,
    in the order given, and a refused one makes the exit code 1."""
    fake, port = smsc
    code = cli.main(["send", "--port", str(port), "--system-id", "acme", "--password", "x", "--to", "07700 900001",
                     "--to", "+447700900002", "--to", "447700900009", "--default-country-code", "44",
                     "--text", "hello"])
    captured = capsys.readouterr()
    assert code == cli.EXIT_FAILURE, captured.err  # 447700900009 was refused by the SMSC
    assert [line.split("\t") for line in captured.out.splitlines()] == [
        ["447700900001", "OK", "m1"], ["447700900002", "OK", "m2"], ["447700900009", "ESME_RINVDSTADR", ""]]
    assert fake.submitted == [("447700900001", 0, b"hello"), ("447700900002", 0, b"hello"),
                              ("447700900009", 0, b"hello")]


def test_cli_send_bad_or_repeated_to_is_a_usage_error_before_anything_is_sent(capsys) -> None:  # type: ignore[no-untyped-def]
    # Port 1: nothing listens there, and nothing is tried: the numbers are checked first.
    code = cli.main(["send", "--port", "1", "--system-id", "a", "--password", "x", "--to", "447700900001",
                     "--to", "0770", "--to", "+44 7700 900001", "--text", "hi"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_BAD_INPUT
    assert err.count("\n") == 1 and "cannot connect" not in err
    assert "--to '0770': " in err and "no default country code" in err
    assert "--to '+44 7700 900001': duplicate of --to number 1" in err


def test_cli_send_to_and_to_file_together_is_a_usage_error(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    numbers = tmp_path / "numbers.csv"
    numbers.write_text("447700900001\n")
    with pytest.raises(SystemExit) as exited:
        cli.main(["send", "--system-id", "a", "--password", "x", "--to", "447700900002", "--to-file", str(numbers),
                  "--text", "hi"])
    assert exited.value.code == cli.EXIT_BAD_INPUT
    assert "not allowed with argument" in capsys.readouterr().err


def test_cli_send_bad_number_is_a_usage_error(capsys) -> None:  # type: ignore[no-untyped-def]
    code = cli.main(["send", "--system-id", "a", "--password", "x", "--to", "0770", "--text", "hi"])
    assert code == cli.EXIT_BAD_INPUT
    assert "no default country code" in capsys.readouterr().err


def test_cli_send_connection_refused_is_a_runtime_failure(capsys) -> None:  # type: ignore[no-untyped-def]
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    code = cli.main(["send", "--port", str(port), "--system-id", "a", "--password", "x", "--to", "+447700900001",
                     "--text", "hi"])
    assert code == cli.EXIT_FAILURE
    assert "cannot connect" in capsys.readouterr().err


def test_whole_text_goes_as_message_payload_only_when_longer_than_one_segment() -> None:
    short = whole_text("hello")
    assert (short.payload, short.short_message, short.data_coding) == (False, b"hello", 0)
    long = whole_text("ж" * 71)  # UCS-2: 70 characters fit one segment
    assert (long.payload, long.data_coding, long.short_message) == (True, 8, ("ж" * 71).encode("utf-16-be"))


def test_the_smsc_splits_by_default_and_max_parts_splits_here(smsc: tuple[FakeSmsc, int], capsys) -> None:  # type: ignore[no-untyped-def]
    fake, port = smsc
    text = "x" * 500  # 4 segments
    code = cli.main(["send", "--port", str(port), "--system-id", "acme", "--password", "x", "--to", "447700900001",
                     "--text", text])
    assert code == cli.EXIT_OK
    assert fake.submitted == [("447700900001", 0, b"")] and fake.payloads == [text.encode()]
    code = cli.main(["send", "--port", str(port), "--system-id", "acme", "--password", "x", "--to", "447700900001",
                     "--text", text, "--max-parts", "3"])
    assert code == cli.EXIT_BAD_INPUT
    assert "4" in capsys.readouterr().err


def test_summary_names_the_numbers_not_delivered(smsc: tuple[FakeSmsc, int]) -> None:
    _, port = smsc
    recipients = [Recipient(1, n, n) for n in ("447700900001", "447700911008", "447700900009")]
    progress = io.StringIO()
    report = send_batch(_settings(port, window=10), recipients, [whole_text("hi")], wait_receipts_s=10.0,
                        out=io.StringIO(), progress=progress)
    assert [(f.number, f.reason) for f in report.failures] == [
        ("447700900009", "refused at submit: ESME_RINVDSTADR"), ("447700911008", "expired, err 000")]
    assert progress.getvalue().endswith("receipts [##############################] 2/2 100%\n")
    assert report.outcomes is not None
    assert format_summary(report.outcomes, report.failures).splitlines()[-3:] == [
        "not delivered:", "  447700900009  refused at submit: ESME_RINVDSTADR", "  447700911008  expired, err 000"]
