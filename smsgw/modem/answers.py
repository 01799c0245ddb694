"""Pure readers of AT answers (TS 27.005 / 27.007 parameter lists): text in, values out, no I/O.

The start-up script, the receive path and the reader task all read the same shapes (`+CREG: <n>,<stat>`,
`("SM","ME"),(0-2)`, `"SM",3`); each shape is read here once.
"""

from __future__ import annotations

import re
from typing import Final

from smsgw.modem.at import Response

_QUOTED: Final = re.compile(r'"([^"]*)"')
_LIST_ITEM: Final = re.compile(r"\(([^)]*)\)|([^,()]+)")
_RANGE: Final = re.compile(r"\d+-\d+")


def text_answer(response: Response, prefix: str) -> str:
    """The first line of an identification answer (+CGMI, +CGMM), its prefix and quotes removed; '' on error."""
    if not response.ok or not response.lines:
        return ""
    return response.lines[0].removeprefix(prefix).strip().strip('"')


def digits(lines: tuple[str, ...]) -> str:
    """The digits of the first line that has at least six (IMEI, IMSI), whatever the model prints around them."""
    for line in lines:
        found = "".join(c for c in line if c.isdigit())
        if len(found) >= 6:
            return found
    return ""


def first_int(text: str) -> int | None:
    head = text.split(",")[0].strip()
    return int(head) if head.isdigit() else None


def rssi(params: str) -> int | None:
    """<rssi> of '+CSQ: <rssi>,<ber>' (or a vendor's '^RSSI: <rssi>'); None for 99, "not known"."""
    value = first_int(params)
    return None if value is None or value == 99 else value


def creg_stat(params: str) -> int | None:
    """<stat> of '+CREG: <n>,<stat>[,...]' (answer) or '+CREG: <stat>[,...]' (unsolicited)."""
    fields = [f.strip() for f in params.split(",")]
    if len(fields) >= 2 and fields[1].isdigit() and not fields[1].startswith('"'):
        return int(fields[1])
    return int(fields[0]) if fields and fields[0].isdigit() else None


def operator_name(params: str) -> str:
    """<oper> of '+COPS: <mode>,<format>,"<oper>"'; '' when the modem names none."""
    quoted = _QUOTED.search(params)
    return quoted.group(1) if quoted else ""


def storage_location(params: str) -> tuple[str, int] | None:
    """('SM', 3) from '"SM",3'."""
    storage, _, index = params.partition(",")
    index = index.strip()
    if not index.isdigit():
        return None
    return storage.strip().strip('"'), int(index)


def parenthesised_lists(text: str) -> list[list[str]]:
    """'("SM","ME"),(0-2),1' -> [['SM','ME'], ['0','1','2'], ['1']]; ranges are expanded."""
    groups: list[list[str]] = []
    for match in _LIST_ITEM.finditer(text):
        body = match.group(1) if match.group(1) is not None else match.group(2)
        values: list[str] = []
        for item in body.split(","):
            item = item.strip().strip('"')
            if _RANGE.fullmatch(item):
                low, high = (int(v) for v in item.split("-"))
                values.extend(str(v) for v in range(low, high + 1))
            elif item:
                values.append(item)
        groups.append(values)
    return groups
