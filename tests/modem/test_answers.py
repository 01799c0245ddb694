from __future__ import annotations

from smsgw.modem.answers import (
    creg_stat,
    digits,
    first_int,
    operator_name,
    parenthesised_lists,
    rssi,
    storage_location,
    text_answer,
)
from smsgw.modem.at import AtChannel, Response


def _response(command: str, *lines: str) -> Response:
    channel = AtChannel()
    channel.command(command, 0.0, 1.0)
    (event,) = channel.receive_data("".join(f"\r\n{line}\r\n" for line in lines).encode())
    assert isinstance(event, Response)
    return event


def test_parameter_lists_of_test_commands() -> None:
    # TS 27.005 3.2.2 / 3.4.1 answers to AT+CPMS=? and AT+CNMI=?, as a Huawei E173 prints them.
    assert parenthesised_lists('("ME","SM","SR"),("ME","SM"),("SM")') == [["ME", "SM", "SR"], ["ME", "SM"], ["SM"]]
    assert parenthesised_lists("(0-2),(0-3),(0,2),(0-2),(0,1)") == [
        ["0", "1", "2"], ["0", "1", "2", "3"], ["0", "2"], ["0", "1", "2"], ["0", "1"]
    ]
    assert parenthesised_lists("(0,1),5") == [["0", "1"], ["5"]]
    assert parenthesised_lists("") == []


def test_registration_in_answers_and_unsolicited_codes() -> None:
    assert creg_stat("0,1") == 1  # AT+CREG? answer: <n>,<stat>
    assert creg_stat("2,5,\"00C3\",\"1A2B\"") == 5
    assert creg_stat("5") == 5  # unsolicited +CREG: <stat>
    assert creg_stat('1,"00C3","1A2B"') == 1  # unsolicited with location: <stat>,<lac>,<ci>
    assert creg_stat("") is None


def test_signal_operator_and_storage_locations() -> None:
    assert rssi("20,99") == 20
    assert rssi("99,99") is None  # not known or not detectable
    assert rssi("x") is None
    assert operator_name('0,0,"Fake Net"') == "Fake Net"
    assert operator_name("0") == ""
    assert storage_location('"SM",3') == ("SM", 3)
    assert storage_location('"SR", 12') == ("SR", 12)
    assert storage_location('"SM"') is None
    assert first_int(" 7,1,,23") == 7
    assert first_int(",1") is None


def test_identification_answers() -> None:
    assert text_answer(_response("AT+CGMI", '+CGMI: "huawei"', "OK"), "+CGMI:") == "huawei"
    assert text_answer(_response("AT+CGMI", "SIMCOM_Ltd", "OK"), "+CGMI:") == "SIMCOM_Ltd"
    assert text_answer(_response("AT+CGMI", "ERROR"), "+CGMI:") == ""
    assert digits(("+CGSN: 356938035643809",)) == "356938035643809"
    assert digits(("", "234150000000001")) == "234150000000001"
    assert digits(("ERROR 12",)) == ""
