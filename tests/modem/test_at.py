from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.modem.at import (
    MAX_LINE_BYTES,
    AtChannel,
    AtChannelError,
    CommandTimedOut,
    FinalResult,
    Prompt,
    Response,
    Unsolicited,
)

CMT_PDU = "07914477790001F0040B914477009000F10000621140710540000AE8329BFD4697D9EC37"


def _feed(channel: AtChannel, data: bytes) -> list[object]:
    return list(channel.receive_data(data))


def test_ok_with_intermediate_lines() -> None:
    channel = AtChannel()
    assert channel.command("AT+CSQ", now=0.0, timeout_s=5.0) == b"AT+CSQ\r"
    events = _feed(channel, b"\r\n+CSQ: 17,99\r\n\r\nOK\r\n")
    assert events == [Response("AT+CSQ", ("+CSQ: 17,99",), FinalResult("OK", ok=True))]
    assert events[0].values("+CSQ:") == ("17,99",)  # type: ignore[union-attr]
    assert not channel.busy


@pytest.mark.parametrize(
    ("line", "cme", "cms", "meaning"),
    [
        ("+CME ERROR: 14", 14, None, "SIM busy"),
        ("+CME ERROR: SIM busy", 14, None, "SIM busy"),
        ("+CMS ERROR: 330", None, 330, "SMSC address unknown"),
        ("+CMS ERROR: 9999", None, 9999, "CMS error 9999"),
        ("ERROR", None, None, "ERROR"),
        ("COMMAND NOT SUPPORT", None, None, "COMMAND NOT SUPPORT"),
    ],
)
def test_error_results_carry_code_and_meaning(line: str, cme: int | None, cms: int | None, meaning: str) -> None:
    channel = AtChannel()
    channel.command("AT+CPIN?", 0.0, 5.0)
    (event,) = _feed(channel, f"\r\n{line}\r\n".encode())
    assert isinstance(event, Response)
    assert not event.ok
    assert (event.result.cme_error, event.result.cms_error, event.result.meaning) == (cme, cms, meaning)


def test_prompt_without_newline_then_pdu_and_echo() -> None:
    channel = AtChannel()
    channel.command("AT+CMGS=14", 0.0, 5.0, expects_prompt=True)
    assert _feed(channel, b"AT+CMGS=14\r\r\n> ") == [Prompt()]
    assert channel.pdu_body("0011000B914477009000F10000AA01E8", 1.0, 60.0) == b"0011000B914477009000F10000AA01E8\x1a"
    events = _feed(channel, b"0011000B914477009000F10000AA01E8\x1a\r\n+CMGS: 7\r\n\r\nOK\r\n")
    assert events == [Response("AT+CMGS=14", ("+CMGS: 7",), FinalResult("OK", ok=True))]


def test_unsolicited_during_command_does_not_break_it() -> None:
    channel = AtChannel()
    channel.command("AT+CMGR=3", 0.0, 5.0)
    stream = (
        b"\r\n+CMGR: 0,,25\r\n"
        + b"\r\n+CMTI: \"SM\",4\r\n"
        + b"\r\n^RSSI: 14\r\n"
        + b"\r\nRING\r\n"
        + b"\r\n^NEWVENDOR: 1,2\r\n"
        + b"\r\n+CMT: ,25\r\n"
        + CMT_PDU.encode()
        + b"\r\n0791447758100650040C914477\r\n\r\nOK\r\n"
    )
    events = _feed(channel, stream)
    assert events == [
        Unsolicited("+CMTI", '+CMTI: "SM",4', '"SM",4'),
        Unsolicited("^RSSI", "^RSSI: 14", "14"),
        Unsolicited("RING", "RING"),
        Unsolicited("^NEWVENDOR", "^NEWVENDOR: 1,2", "1,2"),
        Unsolicited("+CMT", "+CMT: ,25", ",25", CMT_PDU),
        Response("AT+CMGR=3", ("+CMGR: 0,,25", "0791447758100650040C914477"), FinalResult("OK", ok=True)),
    ]


def test_lines_without_a_command_are_unsolicited() -> None:
    channel = AtChannel(extra_unsolicited={"^DATACONN": 0})
    events = _feed(channel, b"\r\n+CDS: 25\r\n0006\r\n\r\n^DATACONN\r\n\r\nCall Ready\r\n\r\nOK\r\n")
    assert events == [
        Unsolicited("+CDS", "+CDS: 25", "25", "0006"),
        Unsolicited("^DATACONN", "^DATACONN"),
        Unsolicited("Call Ready", "Call Ready"),
        Unsolicited("OK", "OK"),
    ]


def test_listed_word_during_command_is_unsolicited() -> None:
    channel = AtChannel(extra_unsolicited=("SMS Ready",))
    channel.command("AT+CGMI", 0.0, 5.0)
    events = _feed(channel, b"\r\nSMS Ready\r\nSIMCOM_Ltd\r\nOK\r\n")
    assert events == [
        Unsolicited("SMS Ready", "SMS Ready"),
        Response("AT+CGMI", ("SIMCOM_Ltd",), FinalResult("OK", ok=True)),
    ]


def test_a_listed_word_is_unsolicited_alone_or_before_a_space_not_as_the_start_of_a_longer_word() -> None:
    channel = AtChannel()
    channel.command("AT+CGMR", 0.0, 5.0)
    events = _feed(channel, b"\r\nRING 1\r\nRINGTONE v2\r\n^SYSSTART\r\n0791447700\r\nOK\r\n")
    assert events == [
        Unsolicited("RING", "RING 1"),
        Unsolicited("^SYSSTART", "^SYSSTART"),
        Response("AT+CGMR", ("RINGTONE v2", "0791447700"), FinalResult("OK", ok=True)),
    ]


def test_own_prefix_is_the_answer_even_when_listed_as_unsolicited() -> None:
    channel = AtChannel()
    channel.command("AT+CREG?", 0.0, 5.0)
    (event,) = _feed(channel, b"\r\n+CREG: 0,1\r\n\r\nOK\r\n")
    assert isinstance(event, Response)
    assert event.values("+CREG:") == ("0,1",)


def test_echo_on_is_removed() -> None:
    channel = AtChannel()
    channel.command("ATE0", 0.0, 5.0)
    assert _feed(channel, b"ATE0\r\r\nOK\r\n") == [Response("ATE0", (), FinalResult("OK", ok=True))]


def test_timeout_then_late_answer_is_unsolicited() -> None:
    channel = AtChannel()
    channel.command("AT+COPS?", 0.0, 5.0)
    assert channel.deadline == 5.0
    assert channel.expire(4.9) == []
    assert channel.expire(5.0) == [CommandTimedOut("AT+COPS?", ())]
    assert not channel.busy
    assert _feed(channel, b"\r\nOK\r\n") == [Unsolicited("OK", "OK")]


def test_second_command_while_busy_is_refused() -> None:
    channel = AtChannel()
    channel.command("AT", 0.0, 1.0)
    with pytest.raises(AtChannelError):
        channel.command("AT", 0.0, 1.0)
    with pytest.raises(AtChannelError):
        channel.pdu_body("00", 0.0, 1.0)


# A stream mixing every kind of line, fed with a command outstanding that expects the prompt.
_PIECES = [
    b"AT+CMGS=14\r",
    b"\r\n+CMTI: \"ME\",1\r\n",
    b"\r\n+CDS: 25\r\n0006\r\n",
    b"\r\n^BOOT:1,0,0,0,72\r\n",
    b"\r\nRING\r\n",
    b"\r\n+CUSD: 0,\"Balance 5\",15\r\n",
    b"\r\n> ",
]


def _chunks(stream: bytes, cuts: list[int]) -> list[bytes]:
    positions = sorted({c for c in cuts if c < len(stream)})
    return [stream[a:b] for a, b in zip([0, *positions], [*positions, len(stream)], strict=True)]


@settings(max_examples=150, deadline=None)
@given(
    order=st.permutations(_PIECES[1:]),
    cuts=st.lists(st.integers(min_value=1, max_value=200), max_size=30),
)
def test_arbitrary_chunking_gives_same_events(order: list[bytes], cuts: list[int]) -> None:
    # The modem sends nothing after the prompt until it has the PDU, so the stream comes in two halves.
    before_prompt = _PIECES[0] + b"".join(order)
    after_pdu = b"0011\x1a\r\n+CMGS: 9\r\n\r\nOK\r\n\r\n+CMTI: \"SM\",2\r\n"

    def run(chunks: list[bytes], rest: list[bytes]) -> list[object]:
        channel = AtChannel()
        channel.command("AT+CMGS=14", 0.0, 5.0, expects_prompt=True)
        events: list[object] = []
        for chunk in chunks:
            events.extend(channel.receive_data(chunk))
        channel.pdu_body("0011", 0.0, 5.0)
        for chunk in rest:
            events.extend(channel.receive_data(chunk))
        return events

    whole = run([before_prompt], [after_pdu])
    assert run(_chunks(before_prompt, cuts), _chunks(after_pdu, cuts)) == whole
    assert whole[-2:] == [
        Response("AT+CMGS=14", ("+CMGS: 9",), FinalResult("OK", ok=True)),
        Unsolicited("+CMTI", '+CMTI: "SM",2', '"SM",2'),
    ]
    assert sum(isinstance(e, Prompt) for e in whole) == 1
    assert len(whole) == 8


_CMTI = Unsolicited("+CMTI", '+CMTI: "SM",2', '"SM",2')


def test_over_long_line_is_discarded_and_the_channel_resynchronises() -> None:
    channel = AtChannel()
    channel.command("AT+CSQ", 0.0, 5.0)
    noise = b"\x00\xff" * MAX_LINE_BYTES  # no CR/LF: buffered up to the cap, then dropped to the next line end
    events = _feed(channel, b"\r\n+CSQ: 17,99\r\n" + noise)
    events += _feed(channel, noise + b"OK\r\n")  # the tail of the same over-long line, OK included
    assert events == []
    events = _feed(channel, b"\r\nOK\r\n\r\n+CMTI: \"SM\",2\r\n")
    assert events == [Response("AT+CSQ", ("+CSQ: 17,99",), FinalResult("OK", ok=True)), _CMTI]


def test_a_line_at_the_cap_is_kept_one_byte_more_is_not() -> None:
    channel = AtChannel()
    longest = b"X" * MAX_LINE_BYTES
    (event,) = _feed(channel, b"\r\n" + longest + b"\r\n")
    assert isinstance(event, Unsolicited) and event.line == longest.decode()
    assert _feed(channel, b"\r\n" + longest + b"Y\r\n" + b'\r\n+CMTI: "SM",2\r\n') == [_CMTI]


def test_two_line_code_whose_data_line_is_over_long_is_dropped_whole() -> None:
    channel = AtChannel()
    events = _feed(channel, b"\r\n+CMT: ,24\r\n" + b"0" * (MAX_LINE_BYTES + 1) + b'\r\n+CMTI: "SM",2\r\n')
    assert events == [_CMTI]  # not a +CMT whose PDU is the +CMTI line


@settings(max_examples=150, deadline=None)
@given(
    garbage=st.binary(max_size=3 * MAX_LINE_BYTES),
    long_runs=st.lists(st.integers(min_value=0, max_value=3 * MAX_LINE_BYTES), max_size=3),
    cuts=st.lists(st.integers(min_value=1, max_value=4 * MAX_LINE_BYTES), max_size=20),
)
def test_garbage_never_raises_bounds_the_buffer_and_the_next_line_is_recognised(
    garbage: bytes, long_runs: list[int], cuts: list[int]
) -> None:
    channel = AtChannel()
    stream = garbage + b"".join(b"Z" * n + b"\r" for n in long_runs)
    events: list[object] = []
    for chunk in _chunks(stream, cuts):
        events.extend(channel.receive_data(chunk))
        assert len(channel._buffer) <= MAX_LINE_BYTES  # what the cap promises: memory bounded per modem
    # Whatever came before, a line end then a known code is understood (a half two-line code may take one line).
    events = _feed(channel, b'\r\n+CMTI: "SM",1\r\n+CMTI: "SM",2\r\n')
    assert events[-1] == _CMTI
