"""The err codes in words: one table, the same as docs/states.md lists."""

from __future__ import annotations

import re
from pathlib import Path

from smsgw.pdu.constants import GatewayError
from smsgw.scheduler.error_codes import GATEWAY_ERROR_MEANINGS, explain_error

STATES_DOC = Path(__file__).resolve().parents[2] / "docs" / "states.md"


def test_every_gateway_error_has_a_meaning_and_docs_list_the_same() -> None:
    documented = dict(re.findall(r"^\| (8\d\d) \| (.+?) \| [^|]+ \|$", STATES_DOC.read_text(), re.MULTILINE))
    assert {int(code): meaning for code, meaning in documented.items()} == {
        int(error): meaning for error, meaning in GATEWAY_ERROR_MEANINGS.items()
    }
    assert set(GATEWAY_ERROR_MEANINGS) == set(GatewayError)


def test_network_and_gateway_codes_in_words() -> None:
    assert explain_error(0) == "no error"
    assert explain_error(0x46) == ("the network gave up when its validity period ended: validity period expired "
                                   "(TP-Status 0x46)")
    assert explain_error(0x41).startswith("a permanent network error: incompatible destination")
    assert explain_error(0x30).startswith("a temporary network error; the network was still trying")
    assert explain_error(801).startswith("promotional message to a number on the do-not-call register")
    assert explain_error(999) == "an error code this gateway does not know"
