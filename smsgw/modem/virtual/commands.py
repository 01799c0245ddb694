"""What every command handler of the virtual modem speaks: the settings it reads and changes, the replies it
returns, the errors it raises and its argument readers.

A handler is `handler(modem, now, command)` in the one table of `smsgw.modem.virtual.modem`; it returns the
information lines of its answer, a `Prompt` (the command continues after `> `) or a `FinalText`, and raises
`CmeError`/`CmsError` with the code to answer or `BadParameter`, answered per command family.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from smsgw.modem.virtual.atparse import Command, LineSyntaxError, Op, split_args

if TYPE_CHECKING:
    from smsgw.modem.virtual.modem import ModemCore

# TS 27.007 9.2 / 27.005 3.2.5 codes the modem uses.
CME_OPERATION_NOT_ALLOWED: Final = 3
CME_OPERATION_NOT_SUPPORTED: Final = 4
CME_SIM_PIN_REQUIRED: Final = 11
CME_SIM_PUK_REQUIRED: Final = 12
CME_SIM_BUSY: Final = 14
CME_INCORRECT_PASSWORD: Final = 16
CME_NO_NETWORK_SERVICE: Final = 30
CME_INCORRECT_PARAMETERS: Final = 50
CMS_OPERATION_NOT_ALLOWED: Final = 302
CMS_OPERATION_NOT_SUPPORTED: Final = 303
CMS_INVALID_PDU_PARAMETER: Final = 304
CMS_INVALID_TEXT_PARAMETER: Final = 305
CMS_SIM_PIN_REQUIRED: Final = 311
CMS_SIM_BUSY: Final = 314
CMS_SIM_PUK_REQUIRED: Final = 316
CMS_INVALID_MEMORY_INDEX: Final = 321
CMS_NO_NETWORK_SERVICE: Final = 331
CMS_NO_CNMA_EXPECTED: Final = 340


class CmeError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"+CME ERROR: {code}")
        self.code = code


class CmsError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"+CMS ERROR: {code}")
        self.code = code


class BadParameter(Exception):
    """An argument the command does not accept; answered per command family (+CME 50 or +CMS 304/305)."""


@dataclass(frozen=True, slots=True)
class Settings:
    """What ATZ / AT&F restore (V.250 6.1.1); storage, SIM and registration are not settings."""

    echo: bool = True
    verbose: bool = True
    quiet: bool = False
    cmee: int = 0
    cmgf: int = 0
    cscs: str = "IRA"
    csdh: int = 0
    # +CSMP <fo>,<vp>,<pid>,<dcs>: SMS-SUBMIT, relative TP-VP 167 (24 h), as TS 27.005 3.3.2 suggests.
    csmp: tuple[int, int, int, int] = (17, 167, 0, 0)
    cnmi: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    cpms: tuple[str, str, str] = ("SM", "SM", "SM")
    csms: int = 0
    creg: int = 0
    cgreg: int = 0
    clip: int = 0
    cops_format: int = 0
    s3: int = 13
    s4: int = 10
    s5: int = 8


@dataclass(frozen=True, slots=True)
class Prompt:
    """The command continues after `> `: `handler(now, typed bytes)` runs at Ctrl-Z."""

    handler: Callable[[float, bytes], list[str]]


@dataclass(frozen=True, slots=True)
class FinalText:
    """A final result code other than OK/ERROR (V.250 5.7.1), with its numeric form."""

    text: str
    numeric: int


Reply = list[str] | Prompt | FinalText
Handler = Callable[["ModemCore", float, Command], Reply]


def args(command: Command, count_max: int) -> list[str | None]:
    """The command's comma-separated arguments, padded with None to `count_max`."""
    try:
        values = split_args(command.args)
    except LineSyntaxError:
        raise BadParameter from None
    if len(values) > count_max:
        raise BadParameter
    return values + [None] * (count_max - len(values))


def flag(command: Command) -> bool:
    if command.args not in ("", "0", "1"):
        raise BadParameter
    return command.args == "1"


def int_arg(arg: str | None, default: int) -> int:
    if arg is None or arg == "":
        return default
    try:
        return int(arg)
    except ValueError:
        raise BadParameter from None


def setting_int(modem: ModemCore, command: Command, field_name: str, label: str, allowed: range) -> list[str]:
    """A numeric setting with the usual read (`label: value`), test (`label: (a-b)`) and set forms."""
    if command.op is Op.READ:
        return [f"{label}: {getattr(modem.settings, field_name)}"]
    if command.op is Op.TEST:
        return [f"{label}: ({allowed.start}-{allowed.stop - 1})"]
    value = int_arg(args(command, 1)[0], 0)
    if value not in allowed:
        raise BadParameter
    changes: dict[str, Any] = {field_name: value}
    modem.settings = dataclasses.replace(modem.settings, **changes)
    return []
