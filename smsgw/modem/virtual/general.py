"""The general commands of the virtual modem: V.250 basic commands (echo, result codes, S-registers, reset),
identification (TS 27.007 5), the SIM (`+CPIN`, 8.3) and the network (`+CSQ`, `+CREG`, `+CGREG`, `+CGATT`,
`+COPS`, `+CFUN`, `+CLIP`, `+CUSD`). Their errors are `+CME ERROR`s."""

from __future__ import annotations

import dataclasses
import enum
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from smsgw.modem.virtual.atparse import Command, Op
from smsgw.modem.virtual.commands import (
    CME_INCORRECT_PASSWORD,
    CME_NO_NETWORK_SERVICE,
    CME_OPERATION_NOT_ALLOWED,
    CME_SIM_BUSY,
    BadParameter,
    CmeError,
    FinalText,
    args,
    flag,
    int_arg,
    setting_int,
)
from smsgw.modem.virtual.persona import GENERIC_PERSONA, ModemPersona

if TYPE_CHECKING:
    from smsgw.modem.virtual.modem import ModemCore

log = logging.getLogger(__name__)

DEFAULT_PIN_TRIES: Final = 3
DEFAULT_PUK_TRIES: Final = 10
_OPERATOR_LONG: Final = "smsgw virtual"
_OPERATOR_SHORT: Final = "smsgw"
_OPERATOR_NUMERIC: Final = "00101"  # MCC 001 MNC 01: the ITU test network
_ACCESS_TECHNOLOGY: Final = 0  # GSM
_LAC: Final = "00A1"
_CELL_ID: Final = "1B2C"


class SimState(enum.Enum):
    BUSY = "SIM BUSY"  # still initialising after power-on
    PIN = "SIM PIN"
    PUK = "SIM PUK"
    READY = "READY"


class Registration(enum.IntEnum):
    """TS 27.007 7.2 `+CREG` <stat>."""

    NOT_REGISTERED = 0
    HOME = 1
    SEARCHING = 2


@dataclass(frozen=True, slots=True)
class ModemIdentity:
    manufacturer: str
    model: str
    revision: str
    imei: str
    imsi: str
    iccid: str

    @classmethod
    def for_msisdn(cls, msisdn: str, persona: ModemPersona = GENERIC_PERSONA) -> ModemIdentity:
        """Stable identifiers derived from the MSISDN, so one number is always the same SIM in the same modem."""
        digits = "".join(c for c in msisdn if c.isdigit()).rjust(10, "0")[-10:]
        return cls(
            manufacturer=persona.manufacturer,
            model=persona.model,
            revision=persona.revision,
            imei=_with_luhn("35" + digits[-12:].rjust(12, "0")),
            imsi=_OPERATOR_NUMERIC + digits,
            iccid=_with_luhn("8900101" + digits.rjust(11, "0")),
        )


def _with_luhn(digits: str) -> str:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            value -= 9 if value > 9 else 0
        total += value
    return digits + str((10 - total % 10) % 10)


# basic commands (V.250)


def cmd_echo(modem: ModemCore, now: float, command: Command) -> list[str]:
    modem.settings = dataclasses.replace(modem.settings, echo=flag(command))
    return []


def cmd_verbose(modem: ModemCore, now: float, command: Command) -> list[str]:
    modem.settings = dataclasses.replace(modem.settings, verbose=flag(command))
    return []


def cmd_quiet(modem: ModemCore, now: float, command: Command) -> list[str]:
    modem.settings = dataclasses.replace(modem.settings, quiet=flag(command))
    return []


def cmd_reset(modem: ModemCore, now: float, command: Command) -> list[str]:
    modem.settings = modem.default_settings()
    return []


def cmd_accept(modem: ModemCore, now: float, command: Command) -> list[str]:
    """Settings a virtual line does not have (&C, &D, &K flow control, &W profile store, X, H): accepted."""
    return []


def cmd_info(modem: ModemCore, now: float, command: Command) -> list[str]:
    identity = modem.identity
    return [identity.manufacturer, identity.model, f"Revision: {identity.revision}"]


def cmd_s_register(modem: ModemCore, now: float, command: Command) -> list[str]:
    register = int(command.name[1:])
    field_name = {3: "s3", 4: "s4", 5: "s5"}.get(register)
    if command.op is Op.READ:
        value = getattr(modem.settings, field_name) if field_name else 0
        return [f"{value:03d}"]
    if not command.args.isdigit() or not 0 <= int(command.args) <= 255:
        raise BadParameter
    if field_name:
        changes: dict[str, Any] = {field_name: int(command.args)}
        modem.settings = dataclasses.replace(modem.settings, **changes)
    elif register != 0:  # S0 (auto-answer) is accepted: no calls ever ring here
        raise BadParameter
    return []


def cmd_no_carrier(modem: ModemCore, now: float, command: Command) -> FinalText:
    return FinalText("NO CARRIER", 3)


def cmd_cmee(modem: ModemCore, now: float, command: Command) -> list[str]:
    return setting_int(modem, command, "cmee", "+CMEE", range(3))


# identification (TS 27.007 5)


def cmd_manufacturer(modem: ModemCore, now: float, command: Command) -> list[str]:
    return [] if command.op is Op.TEST else [modem.identity.manufacturer]


def cmd_model(modem: ModemCore, now: float, command: Command) -> list[str]:
    return [] if command.op is Op.TEST else [modem.identity.model]


def cmd_revision(modem: ModemCore, now: float, command: Command) -> list[str]:
    return [] if command.op is Op.TEST else [modem.identity.revision]


def cmd_imei(modem: ModemCore, now: float, command: Command) -> list[str]:
    return [] if command.op is Op.TEST else [modem.identity.imei]


def cmd_imsi(modem: ModemCore, now: float, command: Command) -> list[str]:
    if command.op is Op.TEST:
        return []
    modem.require_sim("cme")
    return [modem.identity.imsi]


def cmd_iccid(modem: ModemCore, now: float, command: Command) -> list[str]:
    if modem.sim_state is SimState.BUSY:
        raise CmeError(CME_SIM_BUSY)
    return [f"{command.name}: {modem.identity.iccid}"] if command.op is not Op.TEST else []


def cmd_cnum(modem: ModemCore, now: float, command: Command) -> list[str]:
    modem.require_sim("cme")
    return [f'+CNUM: "","+{modem.msisdn}",145']


def cmd_periodic_switch(modem: ModemCore, now: float, command: Command) -> list[str]:
    """The vendor's switch for its periodic status lines (Huawei `^CURC`): 0 off, 1 on."""
    name = modem.persona.periodic_switch
    if command.op is Op.TEST:
        return [f"{name}: (0-1)"]
    if command.op is Op.READ:
        return [f"{name}: {int(modem.periodic_at is not None)}"]
    modem.set_periodic(now, on=flag(command))
    return []


# SIM (TS 27.007 8.3)


def cmd_cpin(modem: ModemCore, now: float, command: Command) -> list[str]:
    if command.op is Op.TEST:
        return []
    if modem.sim_state is SimState.BUSY:
        raise CmeError(CME_SIM_BUSY)
    if command.op is Op.READ:
        return [f"+CPIN: {modem.sim_state.value}"]
    code, new_pin = args(command, 2)
    if modem.sim_state is SimState.PIN:
        if code == modem.pin:
            modem.sim_state = SimState.READY
            modem.pin_tries = DEFAULT_PIN_TRIES
            log.info("virtual modem msisdn=%s SIM PIN accepted", modem.msisdn)
            modem.start_registration(now)
            return []
        modem.pin_tries -= 1
        log.info("virtual modem msisdn=%s wrong SIM PIN tries_left=%d", modem.msisdn, modem.pin_tries)
        if modem.pin_tries == 0:
            modem.sim_state = SimState.PUK
        raise CmeError(CME_INCORRECT_PASSWORD)
    if modem.sim_state is SimState.PUK:
        if modem.puk_tries == 0:
            raise CmeError(CME_OPERATION_NOT_ALLOWED)  # the SIM is blocked for good
        if code != modem.puk or not new_pin:
            modem.puk_tries -= 1
            raise CmeError(CME_INCORRECT_PASSWORD)
        modem.pin, modem.sim_state, modem.pin_tries = new_pin, SimState.READY, DEFAULT_PIN_TRIES
        modem.start_registration(now)
        return []
    raise CmeError(CME_OPERATION_NOT_ALLOWED)


# network (TS 27.007 7 and 8)


def cmd_csq(modem: ModemCore, now: float, command: Command) -> list[str]:
    if command.op is Op.TEST:
        return ["+CSQ: (0-31,99),(0-7,99)"]
    return [f"+CSQ: {modem.rssi()},99"]


def creg_line(modem: ModemCore, label: str, n: int, *, unsolicited: bool) -> str:
    """`+CREG`/`+CGREG` `[<n>,]<stat>[,<lac>,<ci>]`: the virtual network gives packet service with the circuit one."""
    prefix = f"{label}: " if unsolicited else f"{label}: {n},"
    line = f"{prefix}{int(modem.registration)}"
    if n == 2 and modem.registration is Registration.HOME:
        line += f',"{_LAC}","{_CELL_ID}"'
    return line


def cmd_creg(modem: ModemCore, now: float, command: Command) -> list[str]:
    if command.op is Op.READ:
        return [creg_line(modem, "+CREG", modem.settings.creg, unsolicited=False)]
    return setting_int(modem, command, "creg", "+CREG", range(3))


def cmd_cgreg(modem: ModemCore, now: float, command: Command) -> list[str]:
    if command.op is Op.READ:
        return [creg_line(modem, "+CGREG", modem.settings.cgreg, unsolicited=False)]
    return setting_int(modem, command, "cgreg", "+CGREG", range(3))


def cmd_cgatt(modem: ModemCore, now: float, command: Command) -> list[str]:
    """TS 27.007 10.1.9: packet service follows registration on the virtual network; detaching is accepted."""
    if command.op is Op.TEST:
        return ["+CGATT: (0,1)"]
    if command.op is Op.READ:
        return [f"+CGATT: {int(modem.registration is Registration.HOME)}"]
    if int_arg(args(command, 1)[0], -1) not in (0, 1):
        raise BadParameter
    return []


def cmd_cops(modem: ModemCore, now: float, command: Command) -> list[str]:
    if command.op is Op.TEST:
        operator = f'"{_OPERATOR_LONG}","{_OPERATOR_SHORT}","{_OPERATOR_NUMERIC}"'
        return [f"+COPS: (2,{operator},{_ACCESS_TECHNOLOGY}),,(0-4),(0-2)"]
    if command.op is Op.READ:
        if modem.registration is not Registration.HOME:
            return ["+COPS: 0"]
        current = modem.settings.cops_format
        name = (_OPERATOR_LONG, _OPERATOR_SHORT, _OPERATOR_NUMERIC)[current]
        return [f'+COPS: 0,{current},"{name}",{_ACCESS_TECHNOLOGY}']
    mode, fmt, oper, _ = args(command, 4)
    mode_value = int_arg(mode, 0)
    if mode_value not in range(5) or (fmt is not None and int_arg(fmt, 0) not in range(3)):
        raise BadParameter
    if fmt is not None:
        modem.settings = dataclasses.replace(modem.settings, cops_format=int_arg(fmt, 0))
    if mode_value == 1 and oper not in (_OPERATOR_LONG, _OPERATOR_SHORT, _OPERATOR_NUMERIC):
        raise CmeError(CME_NO_NETWORK_SERVICE)
    if mode_value == 2:
        modem.detach(now)
    elif mode_value in (0, 1, 4):
        modem.start_registration(now)
    return []


def cmd_cfun(modem: ModemCore, now: float, command: Command) -> list[str]:
    if command.op is Op.TEST:
        return ["+CFUN: (0,1,4),(0-1)"]
    if command.op is Op.READ:
        return [f"+CFUN: {modem.cfun}"]
    fun, reset = args(command, 2)
    level, reset_value = int_arg(fun, 1), int_arg(reset, 0)
    if level not in (0, 1, 4) or reset_value not in (0, 1):
        raise BadParameter
    if reset_value == 1:
        log.info("virtual modem msisdn=%s reset by AT+CFUN", modem.msisdn)
        modem.detach(now)
        modem.power_on(now)
        modem.cfun = level
        return []
    modem.cfun = level
    if level == 1:
        modem.start_registration(now)
    else:
        modem.detach(now)
    return []


def cmd_clip(modem: ModemCore, now: float, command: Command) -> list[str]:
    if command.op is Op.READ:
        return [f"+CLIP: {modem.settings.clip},1"]
    return setting_int(modem, command, "clip", "+CLIP", range(2))


def cmd_cusd(modem: ModemCore, now: float, command: Command) -> list[str]:
    if command.op is Op.TEST:
        return ["+CUSD: (0-2)"]
    if command.op is Op.READ:
        return ["+CUSD: 0"]
    n, request, dcs = args(command, 3)
    if int_arg(n, 0) not in (0, 1, 2):
        raise BadParameter
    if request is None:
        return []
    if modem.registration is not Registration.HOME:
        raise CmeError(CME_NO_NETWORK_SERVICE)
    answer = modem.network.ussd(modem.msisdn, request)
    if answer is None:
        modem.output.urc(["+CUSD: 4"])
    else:
        modem.output.urc([f'+CUSD: 0,"{answer}",{int_arg(dcs, 15)}'])
    return []
