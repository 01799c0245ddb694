"""One SMPP bind of `smsgw send` / `smsgw receive` over smpplib's PDU classes and blocking socket: connect and bind,
read one PDU at a time and answer what the server asks (enquire_link, unbind), unbind on exit."""

from __future__ import annotations

import logging
import select
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Self

import smpplib.client
import smpplib.command
import smpplib.exceptions
import smpplib.smpp

from smsgw.pdu.constants import CommandStatus, status_name

log = logging.getLogger(__name__)

# smpplib logs every connect and disconnect at INFO; the CLI keeps that out of a command's output.
SMPPLIB_LOGGER: Final = "smsgw.client.smpplib"


class SendError(Exception):
    """The session failed (connect, bind, lost connection, response timeout); the message names the step."""


@dataclass(frozen=True, slots=True)
class ClientSettings:
    host: str
    port: int
    system_id: str
    password: str
    source_addr: str = ""
    window: int = 10
    response_timeout_s: float = 10.0
    enquire_link_interval_s: float = 30.0
    # ESME_RTHROTTLED / ESME_RMSGQFUL: the part is submitted again after delay * 2**attempt, this many times.
    throttle_delay_s: float = 1.0
    throttle_retries: int = 6
    # SMPP over TLS (the gateway's [smpp] tls_port) when given.
    tls: ssl.SSLContext | None = None


class _ServerNamed:
    """smpplib wraps its socket without a server name, which a verifying context refuses (and without which the
    certificate's name could not be checked); this passes the host it connects to."""

    def __init__(self, context: ssl.SSLContext, host: str) -> None:
        self._context = context
        self._host = host

    def wrap_socket(self, sock: socket.socket) -> ssl.SSLSocket:
        return self._context.wrap_socket(sock, server_hostname=self._host)


class Session:
    """One bind over smpplib's blocking socket: connect and bind on enter, unbind on exit; PDUs are read one at a
    time and answered here, deliver_sm by the subclass's `_on_deliver_sm`."""

    def __init__(self, settings: ClientSettings, bind: str) -> None:
        self._settings = settings
        self._bind = bind  # transmitter, receiver or transceiver
        self._in_flight: dict[int, tuple[int, int]] = {}  # sequence -> (message index, part index)
        self._client = smpplib.client.Client(
            settings.host,
            settings.port,
            timeout=settings.response_timeout_s,
            allow_unknown_opt_params=True,
            logger_name=SMPPLIB_LOGGER,
            ssl_context=None if settings.tls is None else _ServerNamed(settings.tls, settings.host),
        )

    def __enter__(self) -> Self:
        where = f"{self._settings.host}:{self._settings.port}"
        try:
            self._client.connect()
        except smpplib.exceptions.ConnectionError as exc:
            self._client.disconnect()  # the socket exists: closed here, not in smpplib's __del__ with a warning
            # smpplib says "Connection refused" whatever happened; the socket's own error says what did.
            raise SendError(f"cannot connect to {where}: {exc.__context__ or exc}") from None
        try:
            getattr(self._client, f"bind_{self._bind}")(
                system_id=self._settings.system_id, password=self._settings.password
            )
        except smpplib.exceptions.PDUError as exc:
            self._client.disconnect()
            raise SendError(f"bind refused by {where}: {status_name(exc.args[1])}") from None
        except (smpplib.exceptions.ConnectionError, OSError) as exc:
            self._client.disconnect()
            raise SendError(f"connection to {where} lost during bind") from exc
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._client.send_pdu(smpplib.smpp.make_pdu("unbind", client=self._client))
            deadline = time.monotonic() + self._settings.response_timeout_s
            while self._readable(max(deadline - time.monotonic(), 0.0)):
                if self._read_one() == "unbind_resp":
                    break
        except (smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError, OSError, SendError):
            log.debug("unbind not answered; closing anyway")
        finally:
            self._client.disconnect()

    def _readable(self, timeout_s: float) -> bool:
        """Whether a PDU has started to arrive; waiting here, not in a read, never splits a PDU at a timeout.
        A TLS socket may hold decrypted bytes that select cannot see."""
        sock = self._client._socket
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        readable, _, _ = select.select([sock], [], [], timeout_s)
        return bool(readable)

    def _read_one(self, on_response: Callable[[int, int, str], None] | None = None) -> str:
        """Read and handle one PDU; returns its command name."""
        try:
            pdu = self._client.read_pdu()
        except TimeoutError as exc:
            raise SendError(f"a PDU stalled for {self._settings.response_timeout_s} s") from exc
        except smpplib.exceptions.ConnectionError as exc:
            raise SendError("connection closed by the server") from exc
        except smpplib.exceptions.PDUError as exc:
            raise SendError(f"unreadable PDU from the server: {exc}") from exc
        command: str = pdu.command
        if command in ("submit_sm_resp", "generic_nack") and pdu.sequence in self._in_flight:
            if on_response is not None:
                on_response(pdu.sequence, int(pdu.status), pdu_text(getattr(pdu, "message_id", b"")))
        elif command == "deliver_sm":
            status = self._on_deliver_sm(pdu)
            if status is not None:
                self._answer(pdu, "deliver_sm_resp", status)
        elif command == "enquire_link":
            self._answer(pdu, "enquire_link_resp", CommandStatus.ESME_ROK)
        elif command == "unbind":
            self._answer(pdu, "unbind_resp", CommandStatus.ESME_ROK)
            raise SendError("the server unbound the session")
        elif command == "generic_nack":
            raise SendError(f"server sent generic_nack {status_name(int(pdu.status))}")
        return command

    def _on_deliver_sm(self, pdu: smpplib.command.DeliverSM) -> int | None:
        """The deliver_sm_resp status, or None to answer later."""
        raise NotImplementedError

    def _keep_alive(self) -> None:
        self._send(smpplib.smpp.make_pdu("enquire_link", client=self._client))

    def _answer(self, request: smpplib.command.Command, command: str, command_status: int) -> None:
        response = smpplib.smpp.make_pdu(command, client=self._client, status=int(command_status))
        response.sequence = request.sequence
        self._send(response)

    def _send(self, pdu: smpplib.command.Command) -> None:
        try:
            self._client.send_pdu(pdu)
        except smpplib.exceptions.ConnectionError as exc:
            raise SendError("connection closed by the server") from exc


def pdu_text(value: bytes | str) -> str:
    """A C-octet string field as smpplib gives it (bytes read from the wire, or str) as text."""
    return value.decode("ascii", "replace") if isinstance(value, bytes) else value
