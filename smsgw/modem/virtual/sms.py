"""The SMS commands of the virtual modem (TS 27.005 3): service and format settings, `+CMGS` in PDU and text mode
(the real codec in reverse: the host's SMS-SUBMIT is decoded and handed to the network), and the storage commands
`+CPMS`, `+CMGR`, `+CMGL`, `+CMGD` and `+CNMA`. Their errors are `+CMS ERROR`s."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Final

from smsgw.modem.virtual.atparse import Command, Op
from smsgw.modem.virtual.commands import (
    CME_OPERATION_NOT_SUPPORTED,
    CMS_INVALID_MEMORY_INDEX,
    CMS_INVALID_PDU_PARAMETER,
    CMS_INVALID_TEXT_PARAMETER,
    CMS_NO_CNMA_EXPECTED,
    CMS_NO_NETWORK_SERVICE,
    CMS_OPERATION_NOT_SUPPORTED,
    BadParameter,
    CmeError,
    CmsError,
    Prompt,
    args,
    int_arg,
    setting_int,
)
from smsgw.modem.virtual.delivery import Storage, StoredSms, store_mt
from smsgw.modem.virtual.general import Registration
from smsgw.modem.virtual.network import SubmitRejected
from smsgw.modem.virtual.textmode import (
    CHARSETS,
    csdh_fields,
    from_charset,
    status_report_fields,
    text_body,
    text_time,
)
from smsgw.pdu.errors import PduError
from smsgw.pdu.gsm7 import encode_gsm7
from smsgw.pdu.text import Encoding
from smsgw.pdu.tpdu import (
    Address,
    Dcs,
    SmsStatusReport,
    SmsSubmit,
    TypeOfNumber,
    decode_relative_validity,
    dialled_type_of_address,
    split_smsc,
)

if TYPE_CHECKING:
    from smsgw.modem.virtual.modem import ModemCore

log = logging.getLogger(__name__)

# TS 27.005 3.1 <stat> in PDU mode and its text mode name.
STAT_NAMES: Final = ("REC UNREAD", "REC READ", "STO UNSENT", "STO SENT", "ALL")
_STAT_ALL: Final = 4


# settings (TS 27.005 3.2, 3.3)


def cmd_csms(modem: ModemCore, now: float, command: Command) -> list[str]:
    if command.op is Op.TEST:
        return ["+CSMS: (0,1)"]
    if command.op is Op.READ:
        return [f"+CSMS: {modem.settings.csms},1,1,1"]
    service = int_arg(args(command, 1)[0], 0)
    if service not in (0, 1):
        raise CmsError(CMS_OPERATION_NOT_SUPPORTED)
    modem.settings = dataclasses.replace(modem.settings, csms=service)
    return ["+CSMS: 1,1,1"]


def cmd_cmgf(modem: ModemCore, now: float, command: Command) -> list[str]:
    return setting_int(modem, command, "cmgf", "+CMGF", range(2))


def cmd_cscs(modem: ModemCore, now: float, command: Command) -> list[str]:
    if command.op is Op.TEST:
        return ["+CSCS: (" + ",".join(f'"{c}"' for c in CHARSETS) + ")"]
    if command.op is Op.READ:
        return [f'+CSCS: "{modem.settings.cscs}"']
    charset = (args(command, 1)[0] or "").upper()
    if charset not in CHARSETS:
        raise CmeError(CME_OPERATION_NOT_SUPPORTED)
    modem.settings = dataclasses.replace(modem.settings, cscs=charset)
    return []


def cmd_csca(modem: ModemCore, now: float, command: Command) -> list[str]:
    modem.require_sim("cms")
    if command.op is Op.TEST:
        return []
    if command.op is Op.READ:
        return [f'+CSCA: "+{modem.config.smsc}",145']
    number, _ = args(command, 2)
    if not number or not number.removeprefix("+").isdigit():
        raise BadParameter
    # The network has one SMSC; a modem takes any address but the virtual SIM keeps routing to it.
    return []


def cmd_csmp(modem: ModemCore, now: float, command: Command) -> list[str]:
    if command.op is Op.READ:
        return ["+CSMP: " + ",".join(str(v) for v in modem.settings.csmp)]
    if command.op is Op.TEST:
        return []
    values = tuple(int_arg(arg, current) for arg, current in zip(args(command, 4), modem.settings.csmp, strict=True))
    if any(not 0 <= value <= 255 for value in values):
        raise BadParameter
    modem.settings = dataclasses.replace(modem.settings, csmp=values)  # type: ignore[arg-type]
    return []


def cmd_csdh(modem: ModemCore, now: float, command: Command) -> list[str]:
    return setting_int(modem, command, "csdh", "+CSDH", range(2))


def cmd_cnmi(modem: ModemCore, now: float, command: Command) -> list[str]:
    if command.op is Op.TEST:
        return [f"+CNMI: {modem.persona.cnmi_test}"]
    if command.op is Op.READ:
        return ["+CNMI: " + ",".join(str(v) for v in modem.settings.cnmi)]
    values = tuple(int_arg(arg, 0) for arg in args(command, 5))
    mode, _, _, _, bfr = values
    if any(value not in allowed for value, allowed in zip(values, modem.persona.cnmi_allowed, strict=True)):
        raise CmsError(CMS_OPERATION_NOT_SUPPORTED)
    modem.settings = dataclasses.replace(modem.settings, cnmi=values)  # type: ignore[arg-type]
    if mode != 0 and bfr == 1:
        modem.output.drop_sms_urcs()
    return []


def cmd_cpms(modem: ModemCore, now: float, command: Command) -> list[str]:
    storages = modem.storages
    if command.op is Op.TEST:
        choice = "(" + ",".join(f'"{n}"' for n in storages) + ")"
        return [f"+CPMS: {choice},{choice},{choice}"]
    modem.require_sim("cms")
    if command.op is Op.READ:
        parts = [f'"{m}",{len(storages[m].slots)},{storages[m].capacity}' for m in modem.settings.cpms]
        return ["+CPMS: " + ",".join(parts)]
    values = args(command, 3)
    chosen = tuple((arg or current).upper() for arg, current in zip(values, modem.settings.cpms, strict=True))
    if values[0] is None or any(m not in storages for m in chosen):
        raise CmsError(CMS_OPERATION_NOT_SUPPORTED)
    modem.settings = dataclasses.replace(modem.settings, cpms=chosen)  # type: ignore[arg-type]
    counts = [f"{len(storages[m].slots)},{storages[m].capacity}" for m in chosen]
    return ["+CPMS: " + ",".join(counts)]


# sending (TS 27.005 3.5.1, 4.3)


def cmd_cmgs(modem: ModemCore, now: float, command: Command) -> list[str] | Prompt:
    if command.op is Op.TEST:
        return []
    if command.op is not Op.SET:
        raise BadParameter
    modem.require_sim("cms")
    if modem.settings.cmgf == 0:
        length = int_arg(args(command, 1)[0], -1)
        if not 7 <= length <= 164:
            raise BadParameter
        return Prompt(lambda when, data: _send_pdu(modem, when, data, length))
    destination, toda = args(command, 2)
    if not destination:
        raise BadParameter
    address = _address(destination, int_arg(toda, dialled_type_of_address(destination)))
    return Prompt(lambda when, data: _send_text(modem, when, data, address))


def _send_pdu(modem: ModemCore, now: float, data: bytes, length: int) -> list[str]:
    try:
        pdu = bytes.fromhex(data.decode("ascii").replace("\r", "").replace("\n", "").replace(" ", ""))
        _, tpdu = split_smsc(pdu)
        if len(tpdu) != length:
            raise CmsError(CMS_INVALID_PDU_PARAMETER)
        submit = SmsSubmit.from_bytes(tpdu)
    except (ValueError, UnicodeDecodeError, PduError) as error:
        log.info("virtual modem msisdn=%s bad PDU in AT+CMGS error=%s", modem.msisdn, error)
        raise CmsError(CMS_INVALID_PDU_PARAMETER) from None
    return _submit(modem, now, submit)


def _send_text(modem: ModemCore, now: float, data: bytes, destination: Address) -> list[str]:
    fo, vp, pid, dcs_value = modem.settings.csmp
    try:
        dcs = Dcs(dcs_value)
        if dcs.encoding is Encoding.GSM7:
            user_data = encode_gsm7(from_charset(data, modem.settings.cscs))
        else:
            user_data = bytes.fromhex(data.decode("ascii"))
        validity = decode_relative_validity(vp) if (fo >> 3) & 0b11 == 0b10 else None
        submit = SmsSubmit(
            destination=destination,
            user_data=user_data,
            dcs=dcs,
            tp_pid=pid,
            validity=validity,
            status_report_request=bool(fo & 0x20),
        )
        submit.to_bytes()  # the limits of one TPDU (140 octets of user data) apply in text mode too
    except (ValueError, PduError) as error:
        log.info("virtual modem msisdn=%s bad text in AT+CMGS error=%s", modem.msisdn, error)
        raise CmsError(CMS_INVALID_TEXT_PARAMETER) from None
    return _submit(modem, now, submit)


def _submit(modem: ModemCore, now: float, submit: SmsSubmit) -> list[str]:
    modem.update(now)
    if modem.registration is not Registration.HOME:
        raise CmsError(CMS_NO_NETWORK_SERVICE)
    # The MS, not the host, numbers its SMS-SUBMITs (TS 23.040 9.2.3.6).
    tp_mr = modem.tp_mr
    modem.tp_mr = (modem.tp_mr + 1) % 256
    result = modem.network.submit(now, modem.msisdn, dataclasses.replace(submit, tp_mr=tp_mr))
    if isinstance(result, SubmitRejected):
        raise CmsError(result.rp_cause)
    return [f"+CMGS: {tp_mr}"]


def _address(number: str, type_of_address: int) -> Address:
    try:
        if (type_of_address >> 4) & 0b111 == TypeOfNumber.INTERNATIONAL or number.startswith("+"):
            return Address.international(number)
        return Address(number, (type_of_address >> 4) & 0b111)
    except PduError:
        raise BadParameter from None


# storage (TS 27.005 3.5.2-3.5.4, 3.4.4)


def _read_memory(modem: ModemCore) -> Storage:
    return modem.storages[modem.settings.cpms[0]]


def cmd_cmgr(modem: ModemCore, now: float, command: Command) -> list[str]:
    if command.op is Op.TEST:
        return []
    modem.require_sim("cms")
    index = int_arg(args(command, 1)[0], -1)
    storage = _read_memory(modem)
    stored = storage.slots.get(index)
    if stored is None:
        raise CmsError(CMS_INVALID_MEMORY_INDEX)
    if stored.stat == 0:
        storage.slots[index] = dataclasses.replace(stored, stat=1)
    return _listing(modem, "+CMGR: ", None, stored)


def _listing(modem: ModemCore, prefix: str, index: int | None, stored: StoredSms) -> list[str]:
    """The header line and body of one stored message, as +CMGR (index None) or +CMGL show it."""
    settings = modem.settings
    head = f"{prefix}{index}," if index is not None else prefix
    if settings.cmgf == 0:
        return [f"{head}{stored.stat},,{stored.tpdu_length}", stored.pdu.hex().upper()]
    stat = f'"{STAT_NAMES[stored.stat]}"'
    message = stored.message
    if isinstance(message, SmsStatusReport):
        return [f"{head}{stat},{status_report_fields(message)}"]
    header = f'{head}{stat},"{message.originator}",,"{text_time(message.scts)}"'
    if settings.csdh:
        header += csdh_fields(message, modem.config.smsc)
    return [header, text_body(message.dcs, message.user_data, settings.cscs)]


def cmd_cmgl(modem: ModemCore, now: float, command: Command) -> list[str]:
    if command.op is Op.TEST:
        if modem.settings.cmgf == 0:
            return ["+CMGL: (0-4)"]
        return ["+CMGL: (" + ",".join(f'"{name}"' for name in STAT_NAMES) + ")"]
    modem.require_sim("cms")
    arg = args(command, 1)[0] if command.op is Op.SET else None
    if modem.settings.cmgf == 0:
        wanted = int_arg(arg, 0)
    else:
        if arg is not None and arg.upper() not in STAT_NAMES:
            raise BadParameter
        wanted = STAT_NAMES.index(arg.upper()) if arg is not None else 0
    if wanted not in range(5):
        raise BadParameter
    storage = _read_memory(modem)
    lines: list[str] = []
    for index in sorted(storage.slots):
        stored = storage.slots[index]
        if wanted == _STAT_ALL or stored.stat == wanted:
            lines.extend(_listing(modem, "+CMGL: ", index, stored))
            if stored.stat == 0:
                storage.slots[index] = dataclasses.replace(stored, stat=1)
    return lines


def cmd_cmgd(modem: ModemCore, now: float, command: Command) -> list[str]:
    storage = _read_memory(modem)
    if command.op is Op.TEST:
        return [f"+CMGD: ({','.join(str(i) for i in sorted(storage.slots))}),(0-4)"]
    modem.require_sim("cms")
    index_arg, flag_arg = args(command, 2)
    delete_flag = int_arg(flag_arg, 0)
    if delete_flag not in range(5):
        raise BadParameter
    if delete_flag == 0:
        index = int_arg(index_arg, -1)
        if not 1 <= index <= storage.capacity:
            raise CmsError(CMS_INVALID_MEMORY_INDEX)
        storage.slots.pop(index, None)
    else:
        # delflag 1: read; 2: read and sent; 3: read, sent and unsent; 4: all (TS 27.005 3.5.4)
        doomed = {1: {1}, 2: {1, 3}, 3: {1, 2, 3}, 4: {0, 1, 2, 3}}[delete_flag]
        for index in [i for i, stored in storage.slots.items() if stored.stat in doomed]:
            del storage.slots[index]
    if modem.memory_exceeded and storage.free_index() is not None:
        modem.memory_exceeded = False
        modem.network.memory_available(now, modem.msisdn)
    return []


def cmd_cnma(modem: ModemCore, now: float, command: Command) -> list[str]:
    if command.op is Op.TEST:
        return ["+CNMA: (0-2)"] if modem.settings.cmgf == 0 else []
    reply = int_arg(args(command, 2)[0], 0) if command.op is Op.SET else 0
    if reply not in (0, 1, 2):
        raise BadParameter
    if not modem.unacknowledged:
        raise CmsError(CMS_NO_CNMA_EXPECTED)
    waiting = modem.unacknowledged.pop(0)
    if reply == 2:
        # RP-ERROR: the host refused it; the network would send it again and the modem keep it, as here.
        store_mt(modem, waiting.message, waiting.pdu, None)
    return []
