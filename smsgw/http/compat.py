"""Drop-in endpoints for applications written for Kannel (`/cgi-bin/sendsms`) and Jasmin (`/send`, `/balance`):
their parameter names, answers and dlr-url behaviour, over the one accept path (the same accounts, throttle,
policy, charging and states as SMPP and the REST API).

Credentials come as `username` / `password` parameters, checked by the SMPP bind's `Login` (its lockout too).
Delivery reports go where the request's dlr-url says, in that product's form (`smsgw.scheduler.dlr`): Kannel's
URL with its escape codes expanded, fetched with GET, for the events of dlr-mask; Jasmin's fields by
dlr-method for dlr-level 1 (the network took it), 2 (the handset) or 3 (both).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Final
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from smsgw.config import AccountConfig
from smsgw.http.deps import HttpDeps
from smsgw.pdu.constants import CommandStatus, GatewayError, Npi, Ton
from smsgw.scheduler.accept import Accepted, Encoded, Options, Rejected, Submission, Text, Timing
from smsgw.scheduler.dlr import JASMIN_LEVELS
from smsgw.scheduler.model import Address, StoreUnavailable
from smsgw.scheduler.routing import MICRO
from smsgw.smpp_server.accounts import BindRefused

log = logging.getLogger(__name__)

# data_coding of Kannel's `coding` (0 7-bit: the gateway chooses GSM or UCS-2, 1 8-bit, 2 UCS-2).
_KANNEL_CODINGS: Final = {0: 0x00, 1: 0x04, 2: 0x08}
_KANNEL_CHARSETS: Final = {0: "utf-8", 1: "utf-8", 2: "utf-16-be"}  # Kannel's defaults per coding
_KANNEL_MAX_MASK: Final = 63  # gw/smsbox.c refuses a dlr-mask above 0b111111
_MESSAGE_CLASS: Final = 0x10  # data_coding bit: the low two bits are the message class (class 0 = flash)
_JASMIN_PARAMETERS: Final = frozenset({
    "username", "password", "to", "from", "coding", "priority", "sdt", "validity-period", "dlr", "dlr-url",
    "dlr-level", "dlr-method", "tags", "content", "hex-content", "custom_tlvs",
})
_NO_ROUTE: Final = GatewayError.NO_ROUTE.command_status
_NO_BALANCE: Final = GatewayError.INSUFFICIENT_BALANCE.command_status


class _Refused(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


async def _parameters(request: Request) -> dict[str, str]:
    """Query and form parameters as latin-1 text, so each byte survives for the `charset` to decode."""
    pairs = parse_qsl(request.url.query, keep_blank_values=True, encoding="latin-1")
    if request.method == "POST":
        pairs += parse_qsl((await request.body()).decode("latin-1"), keep_blank_values=True, encoding="latin-1")
    return dict(pairs)


def _text(raw: str, charset: str = "utf-8") -> str:
    try:
        return raw.encode("latin-1").decode(charset)
    except (UnicodeDecodeError, LookupError) as exc:
        raise _Refused(400, f"Charset {charset} does not decode the text, rejected") from exc


def _int(parameters: Mapping[str, str], name: str, refusal: _Refused) -> int | None:
    value = parameters.get(name, "")
    if value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise refusal from None


async def _login(deps: HttpDeps, request: Request, system_id: str, password: str) -> AccountConfig | None:
    address = request.client.host if request.client is not None else ""
    try:
        return await deps.login.authenticate(system_id, password, address)
    except BindRefused as exc:
        log.info("http authentication refused address=%s system_id=%s reason=%s", address, system_id, exc.reason)
        return None


def _address(number: str) -> Address:
    number = number.strip()
    if number.startswith("+"):
        return Address(number[1:], Ton.INTERNATIONAL, Npi.ISDN)
    return Address(number, Ton.UNKNOWN, Npi.ISDN)


async def _accept(
    deps: HttpDeps, account: AccountConfig, submissions: list[Submission]
) -> list[Accepted | Rejected]:
    """Through the one accept path, charged to the account's throughput limit like its SMPP binds."""
    results = [
        r for per in await deps.scheduler.accept.accept(account.system_id, submissions,
                                                         throttle=deps.smpp.throttle(account))
        for r in per
    ]
    for result in results:
        deps.metrics.submitted("http", CommandStatus.ESME_ROK if isinstance(result, Accepted) else
                               result.command_status)
    return results


# -- Kannel -----------------------------------------------------------------------------------------------------

async def _kannel_sendsms(deps: HttpDeps, request: Request) -> Response:
    try:
        parameters = await _parameters(request)
        account = await _login(deps, request, _text(parameters.get("username", parameters.get("user", ""))),
                               _text(parameters.get("password", parameters.get("pass", ""))))
        if account is None:
            raise _Refused(403, "Authorization failed for sendsms")
        if "to" not in parameters:
            raise _Refused(400, "Missing receiver number, rejected")
        receivers = _text(parameters["to"]).split()
        if not receivers:
            raise _Refused(400, "Empty receiver number not allowed, rejected")
        submission = _kannel_submission(parameters, receivers)
        results = await _accept(deps, account, [submission._replace(destinations=[d])
                                                          for d in submission.destinations])
    except _Refused as refused:
        return PlainTextResponse(refused.text, status_code=refused.status)
    except StoreUnavailable:
        # Kannel's answer when bearerbox could not take the message for now (gw/smsbox.c, ack_failed_tmp).
        return PlainTextResponse("Temporal failure, try again later.", status_code=503)
    failed = [r for r in results if isinstance(r, Rejected)]
    if len(failed) == len(results):
        if failed[0].command_status == CommandStatus.ESME_RTHROTTLED:
            # Kannel's answer when a message cannot be taken for now (gw/smsbox.c, ack_failed_tmp).
            return PlainTextResponse("Temporal failure, try again later.", status_code=503)
        if failed[0].command_status == _NO_ROUTE:
            # Kannel's answer when bearerbox has no SMSC to route the message to (gw/smsbox.c, ack_failed).
            return PlainTextResponse("Not routable. Do not try again.", status_code=403)
        return PlainTextResponse(f"{failed[0].reason}, rejected", status_code=_kannel_status(failed[0]))
    # gw/smsbox.c: "0: Accepted for delivery", or "3: Queued for later delivery" for a message bearerbox queued.
    answer = "3: Queued for later delivery" if submission.timing.schedule else "0: Accepted for delivery"
    if failed:
        # gw/smsbox.c appends the receivers its lists refused to its answer in these words.
        answer += " Denied receivers are: " + " ".join(r.destination.addr for r in failed)
    return PlainTextResponse(answer, status_code=202)


def _kannel_status(rejected: Rejected) -> int:
    return 402 if rejected.command_status == _NO_BALANCE else 403 if rejected.command_status >= 0x400 else 400


def _minutes(parameters: Mapping[str, str], name: str, refusal: _Refused) -> int | None:
    """Kannel's validity and deferred: minutes, -1 the same as absent, below that misformed (gw/smsbox.c)."""
    minutes = _int(parameters, name, refusal)
    if minutes is not None and minutes < -1:
        raise refusal
    return None if minutes == -1 else minutes


def _kannel_submission(parameters: Mapping[str, str], receivers: list[str]) -> Submission:
    coding = _int(parameters, "coding", _Refused(400, "Coding field misformed, rejected"))
    coding = 0 if coding is None else coding
    if coding not in _KANNEL_CODINGS:
        raise _Refused(400, "Coding field misformed, rejected")
    mclass = _int(parameters, "mclass", _Refused(400, "MClass field misformed, rejected"))
    if mclass is not None and not 0 <= mclass <= 3:
        raise _Refused(400, "MClass field misformed, rejected")
    validity = _minutes(parameters, "validity", _Refused(400, "Validity field misformed, rejected"))
    deferred = _minutes(parameters, "deferred", _Refused(400, "Deferred field misformed, rejected"))
    mask = _int(parameters, "dlr-mask", _Refused(400, "DLR-Mask field misformed, rejected"))
    if mask is not None and not -1 <= mask <= _KANNEL_MAX_MASK:
        raise _Refused(400, "DLR-Mask field misformed, rejected")
    mask = max(mask or 0, 0)
    charset = parameters.get("charset") or _KANNEL_CHARSETS[coding]
    text = _text(parameters.get("text", ""), charset)
    content: Text | Encoded
    if coding == 0:
        content = Text(text)
    else:
        payload = text.encode("utf-16-be") if coding == 2 else text.encode("latin-1", errors="replace")
        data_coding = _KANNEL_CODINGS[coding] | (0 if mclass is None else _MESSAGE_CLASS | mclass)
        content = Encoded(payload, data_coding)
    dlr_url = _text(parameters.get("dlr-url", "")) if mask else ""
    return Submission(
        destinations=[_address(r) for r in receivers],
        content=content,
        sender=_address(_text(parameters.get("from", ""))),
        timing=Timing(
            schedule=None if deferred is None else timedelta(minutes=deferred),
            validity=None if validity is None else timedelta(minutes=validity),
        ),
        options=Options(flash=mclass == 0, dlr_url=dlr_url, dlr_format="kannel", dlr_method="GET",
                        dlr_mask=mask),
    )


# -- Jasmin -----------------------------------------------------------------------------------------------------

def _jasmin_error(status: int, text: str) -> Response:
    return PlainTextResponse(f'Error "{text}"', status_code=status)


async def _jasmin_account(deps: HttpDeps, request: Request, parameters: Mapping[str, str]) -> AccountConfig:
    username = parameters.get("username", "")
    account = await _login(deps, request, _text(username), _text(parameters.get("password", "")))
    if account is None:
        raise _Refused(403, f"Authentication failure for username:{_text(username)}")
    return account


async def _jasmin_send(deps: HttpDeps, request: Request) -> Response:
    try:
        parameters = await _parameters(request)
        for name in parameters:
            if name not in _JASMIN_PARAMETERS:
                raise _Refused(400, f"Argument {name} is unknown.")
        if not {"username", "password", "to"} <= parameters.keys() or not (
            "content" in parameters or "hex-content" in parameters
        ):
            raise _Refused(400, "Mandatory arguments not found, please refer to the HTTPAPI specifications.")
        submission = _jasmin_submission(parameters)
        account = await _jasmin_account(deps, request, parameters)
        (result,) = await _accept(deps, account, [submission])
    except _Refused as refused:
        return _jasmin_error(refused.status, refused.text)
    except StoreUnavailable:
        return _jasmin_error(500, "Cannot send submit_sm, check SMPPClientManagerPB log file for details")
    if isinstance(result, Accepted):
        return PlainTextResponse(f'Success "{result.message_id}"')
    if result.command_status == CommandStatus.ESME_RTHROTTLED:
        return _jasmin_error(403, "User throughput exceeded")  # Jasmin's own answer (its httpapi send.py)
    if result.command_status == _NO_ROUTE:
        return _jasmin_error(412, "No route found")
    if result.command_status == _NO_BALANCE:
        return _jasmin_error(403, "Cannot charge submit_sm, check RouterPB log file for details")
    return _jasmin_error(400, result.reason)


def _invalid(name: str, value: str) -> _Refused:
    return _Refused(400, f"Argument {name} has an invalid value: {value}.")


def _jasmin_submission(parameters: Mapping[str, str]) -> Submission:
    coding = _int(parameters, "coding", _invalid("coding", parameters.get("coding", "")))
    if coding is not None and not 0 <= coding <= 14:
        raise _invalid("coding", str(coding))
    content: Text | Encoded
    if "hex-content" in parameters:
        try:
            payload = bytes.fromhex(parameters["hex-content"])
        except ValueError:
            raise _invalid("hex-content", parameters["hex-content"]) from None
        content = Encoded(payload, coding or 0)
    elif coding in (None, 0):
        content = Text(_text(parameters["content"]))
    else:
        text = _text(parameters["content"])
        content = Encoded(text.encode("utf-16-be") if coding == 8 else text.encode("latin-1", errors="replace"),
                          coding)
    validity = _int(parameters, "validity-period", _invalid("validity-period", parameters.get("validity-period", "")))
    options = Options()
    if parameters.get("dlr", "no") not in ("yes", "no"):
        raise _invalid("dlr", parameters["dlr"])
    if parameters.get("dlr") == "yes" and parameters.get("dlr-url"):  # without a URL Jasmin tracks no DLR either
        level = _int(parameters, "dlr-level", _invalid("dlr-level", parameters.get("dlr-level", "")))
        if level is None:
            raise _Refused(400, "Mandatory argument dlr-level is not found.")
        if level not in JASMIN_LEVELS:
            raise _invalid("dlr-level", str(level))
        method = parameters.get("dlr-method", "").upper()
        if not method:
            raise _Refused(400, "Mandatory argument dlr-method is not found.")
        if method not in ("GET", "POST"):
            raise _invalid("dlr-method", parameters["dlr-method"])
        options = Options(dlr_url=_text(parameters["dlr-url"]), dlr_format="jasmin", dlr_method=method,
                          dlr_mask=JASMIN_LEVELS[level])
    return Submission(
        destinations=[_address(_text(parameters["to"]))],
        content=content,
        sender=_address(_text(parameters.get("from", ""))),
        timing=Timing(validity=None if validity is None else timedelta(minutes=validity)),
        options=options,
    )


async def _jasmin_balance(deps: HttpDeps, request: Request) -> Response:
    try:
        account = await _jasmin_account(deps, request, await _parameters(request))
    except _Refused as refused:
        return _jasmin_error(refused.status, refused.text)
    balance = await deps.store.balance(account.system_id)
    # Jasmin's sms_count is a quota of messages; smsgw has none: "ND", as Jasmin says for "not defined".
    return JSONResponse({"balance": balance / MICRO, "sms_count": "ND"})


def routes(deps: HttpDeps) -> list[BaseRoute]:
    async def kannel_sendsms(request: Request) -> Response:
        return await _kannel_sendsms(deps, request)

    async def jasmin_send(request: Request) -> Response:
        return await _jasmin_send(deps, request)

    async def jasmin_balance(request: Request) -> Response:
        return await _jasmin_balance(deps, request)

    return [
        Route("/cgi-bin/sendsms", kannel_sendsms, methods=["GET", "POST"]),
        Route("/send", jasmin_send, methods=["GET", "POST"]),
        Route("/balance", jasmin_balance, methods=["GET", "POST"]),
    ]
