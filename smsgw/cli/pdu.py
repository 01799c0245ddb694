"""`smsgw pdu decode` and `smsgw pdu encode-sms`."""

from __future__ import annotations

import argparse
from typing import Final

from smsgw.cli.common import EXIT_OK, CliError, plural


def add_pdu(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from smsgw.pdu.describe import KINDS

    pdu = commands.add_parser("pdu", help="decode SMPP PDUs and GSM TPDUs, build the TPDUs AT+CMGS takes")
    actions = pdu.add_subparsers(dest="pdu_command", metavar="ACTION", required=True)
    decode = actions.add_parser(
        "decode",
        help="print an SMPP PDU or a TS 23.040 TPDU as JSON",
        description="Auto-detection: an SMPP PDU starts with its own length; anything else is read as a TPDU, "
        "with the SMSC prefix of PDU mode and then without it.",
    )
    decode.add_argument("hex", metavar="HEX", help="the PDU in hex (spaces allowed)")
    decode.add_argument("--kind", choices=KINDS, default="auto")
    decode.set_defaults(handler=_cmd_pdu_decode)
    encode = actions.add_parser(
        "encode-sms",
        help="print the SMS-SUBMIT TPDUs of a text, one JSON line per part: AT+CMGS=<length>, then <pdu>",
        description="GSM 7-bit when every character fits, else UCS-2; long texts become concatenated parts.",
    )
    encode.add_argument("--to", required=True, metavar="N", help="+international or digits of unknown type")
    encode.add_argument("--text", required=True, metavar="T")
    encode.add_argument("--flash", action="store_true", help="message class 0: shown at once, not stored")
    encode.add_argument("--srr", action="store_true", help="request a status report (TP-SRR)")
    encode.add_argument("--unicode", action="store_true", help="UCS-2 even when GSM 7-bit would do")
    encode.add_argument("--smsc", metavar="N", help="SMSC number (default: the one stored in the modem)")
    encode.add_argument("--validity", type=int, metavar="MINUTES", help="relative validity period (TP-VP)")
    encode.add_argument("--reference", type=int, metavar="N", help="concatenation reference 0-255 (default random)")
    encode.add_argument("--mr", type=int, default=0, metavar="N", help="TP-MR of the first part (a modem may reassign)")
    encode.add_argument("--max-parts", type=int, default=3, metavar="N")
    encode.set_defaults(handler=_cmd_pdu_encode_sms)


# An SMS-SUBMIT with an empty destination and no user data: first octet, TP-MR, address length and type,
# TP-PID, TP-DCS, TP-UDL.
_SHORTEST_TPDU: Final = 7


def _cmd_pdu_decode(args: argparse.Namespace) -> int:
    import json

    from smsgw.pdu.describe import decode_any
    from smsgw.pdu.errors import PduError

    try:
        data = bytes.fromhex(args.hex)
    except ValueError as exc:
        raise CliError(f"bad hex {args.hex[:40]!r}: {exc}") from None
    if len(data) < _SHORTEST_TPDU:
        raise CliError(
            f"{plural(len(data), 'octet')} cannot be a PDU: an SMPP PDU has at least 16 octets (its header), "
            f"a TPDU at least {_SHORTEST_TPDU}"
        )
    try:
        described = decode_any(data, args.kind)
    except PduError as exc:
        raise CliError(exc.message) from None
    print(json.dumps(described, indent=2, ensure_ascii=False))
    return EXIT_OK


def _cmd_pdu_encode_sms(args: argparse.Namespace) -> int:
    import json
    import random
    from datetime import timedelta

    from smsgw.pdu.errors import PduError
    from smsgw.pdu.segmentation import segment_text
    from smsgw.pdu.text import Encoding
    from smsgw.pdu.tpdu import Address, Dcs, SmsSubmit, TypeOfNumber, cmgs_length, encode_with_smsc

    reference = random.randrange(256) if args.reference is None else args.reference
    if not 0 <= args.mr <= 255:
        raise CliError(f"--mr {args.mr} is not 0-255")
    try:
        destination = Address.parse(args.to)
        if destination.ton == TypeOfNumber.ALPHANUMERIC:
            raise CliError(f"--to {args.to!r} is not a number")
        segmented = segment_text(
            args.text,
            encoding=Encoding.UCS2 if args.unicode else None,
            max_segments=args.max_parts,
            reference=reference,
        )
        dcs = Dcs.for_encoding(segmented.encoding, 0 if args.flash else None)
        validity = None if args.validity is None else timedelta(minutes=args.validity)
        for index, part in enumerate(segmented.parts):
            submit = SmsSubmit(
                destination,
                part.user_data,
                dcs,
                part.udh,
                tp_mr=(args.mr + index) % 256,
                validity=validity,
                status_report_request=args.srr,
            )
            pdu = encode_with_smsc(submit.to_bytes(), args.smsc)
            line = {"part": part.sequence, "parts": part.total, "length": cmgs_length(pdu), "pdu": pdu.hex().upper()}
            print(json.dumps(line))
    except (PduError, ValueError) as exc:
        raise CliError(getattr(exc, "message", str(exc))) from None
    return EXIT_OK
