"""A test ESME on smpplib over a real socket: an independent SMPP implementation drives the gateway.

smpplib is blocking, so tests call these methods through `trio.to_thread.run_sync`. Responses are matched by
sequence number; every deliver_sm that arrives meanwhile is acknowledged (or refused, when asked) and kept.
"""

from __future__ import annotations

import select
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import smpplib.client
import smpplib.command
import smpplib.exceptions
import smpplib.smpp

from smsgw.pdu.constants import CommandId, EsmClass, esm_message_type
from smsgw.pdu.dlr import DeliveryReceipt, parse_receipt
from smsgw.pdu.smpp import CancelSm, SmeAddress, SubmitMulti, SubmitMultiResp, decode_pdu, encode_pdu
from smsgw.pdu.text import decode_text

_READ_SLICE_S = 0.2


@dataclass(frozen=True)
class Delivered:
    """One deliver_sm as the ESME saw it."""

    esm_class: int
    source_addr: str
    destination_addr: str
    data_coding: int
    short_message: bytes
    receipted_message_id: str | None
    message_state: int | None

    @property
    def is_receipt(self) -> bool:
        return esm_message_type(self.esm_class) == EsmClass.DELIVERY_RECEIPT

    def receipt(self) -> DeliveryReceipt:
        return parse_receipt(self.short_message, receipted_message_id=self.receipted_message_id,
                             message_state=self.message_state)

    @property
    def text(self) -> str:
        return decode_text(self.short_message, self.data_coding)


def _str(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value or "")


class Esme:
    def __init__(self, port: int, system_id: str, password: str, *, bind: str = "transceiver") -> None:
        self.client = smpplib.client.Client("127.0.0.1", port, timeout=10, allow_unknown_opt_params=True)
        self.client.connect()
        getattr(self.client, f"bind_{bind}")(system_id=system_id, password=password)
        self.delivered: list[Delivered] = []
        self.refuse_deliveries = False
        self.unbound_by_server = False
        self._responses: dict[int, Any] = {}

    def close(self) -> None:
        try:
            self.client.unbind()
        except (smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError, OSError):
            pass
        self.client.disconnect()

    def request(self, command: str, timeout_s: float = 30.0, **fields: Any) -> Any:
        pdu = smpplib.smpp.make_pdu(command, client=self.client, **fields)
        # Past smpplib's own state table, which wrongly refuses query_sm on transmitter binds.
        self.client._socket.sendall(pdu.generate())
        return self._response(pdu.sequence, command, timeout_s)

    def cancel(self, message_id: str, destination: str, timeout_s: float = 30.0) -> int:
        """cancel_sm, which smpplib lacks: encoded with smsgw's codec, sent on the same socket; its status."""
        sequence = self.client.next_sequence()
        request = CancelSm(sequence_number=sequence, message_id=message_id, dest_addr_ton=1, dest_addr_npi=1,
                           destination_addr=destination)
        self.client._socket.sendall(encode_pdu(request))
        return int(self._response(sequence, "cancel_sm", timeout_s).command_status)

    def submit_multi(
        self, destinations: list[str], short_message: bytes, timeout_s: float = 30.0, **fields: Any
    ) -> SubmitMultiResp:
        """submit_multi, which smpplib lacks: encoded with smsgw's codec, sent on the same socket."""
        sequence = self.client.next_sequence()
        request = SubmitMulti(
            sequence_number=sequence,
            destinations=tuple(SmeAddress(1, 1, destination) for destination in destinations),
            short_message=short_message,
            **fields,
        )
        self.client._socket.sendall(encode_pdu(request))
        response = self._response(sequence, "submit_multi", timeout_s)
        assert isinstance(response, SubmitMultiResp)
        return response

    def _response(self, sequence: int, command: str, timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        while sequence not in self._responses:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no response to {command} within {timeout_s} s")
            self._read_one()
        return self._responses.pop(sequence)

    def submit(self, destination: str, short_message: bytes = b"hi", timeout_s: float = 30.0,
               **fields: Any) -> tuple[int, str]:
        """(command_status, message_id) of one submit_sm; defaults: international destination, GSM text."""
        return self.submit_response(self.send_submit(destination, short_message, **fields), timeout_s)

    def send_submit(self, destination: str, short_message: bytes = b"hi", **fields: Any) -> int:
        """Send one submit_sm without waiting for its response (an ESME's window); its sequence number."""
        fields.setdefault("dest_addr_ton", 1)
        fields.setdefault("dest_addr_npi", 1)
        pdu = smpplib.smpp.make_pdu("submit_sm", client=self.client, destination_addr=destination,
                                    short_message=short_message, **fields)
        self.client._socket.sendall(pdu.generate())
        return int(pdu.sequence)

    def submit_response(self, sequence: int, timeout_s: float = 30.0) -> tuple[int, str]:
        """(command_status, message_id) of the submit_sm sent as `sequence`."""
        response = self._response(sequence, "submit_sm", timeout_s)
        return int(response.status), _str(getattr(response, "message_id", b""))

    def wait_unbound(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.unbound_by_server:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server did not unbind within {timeout_s} s")
            self._read_one()

    def wait_for(self, predicate: Callable[[list[Delivered]], bool], timeout_s: float = 30.0) -> list[Delivered]:
        deadline = time.monotonic() + timeout_s
        while not predicate(self.delivered):
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout_s} s; delivered so far: {self.delivered}")
            self._read_one()
        return self.delivered

    def receipts(self, count: int, timeout_s: float = 30.0) -> list[DeliveryReceipt]:
        self.wait_for(lambda items: sum(1 for d in items if d.is_receipt) >= count, timeout_s)
        return [d.receipt() for d in self.delivered if d.is_receipt]

    def _read_one(self) -> None:
        # Wait for readability first: a read timeout in the middle of a PDU would desynchronise the stream.
        readable, _, _ = select.select([self.client._socket], [], [], _READ_SLICE_S)
        if not readable:
            return
        header = self.client._recv_exact(8)
        length, command_id = struct.unpack(">LL", header)
        raw = header + self.client._recv_exact(length - 8)
        if command_id in (CommandId.CANCEL_SM_RESP, CommandId.SUBMIT_MULTI_RESP):
            response = decode_pdu(raw)
            self._responses[response.sequence_number] = response
            return
        pdu = smpplib.smpp.parse_pdu(raw, client=self.client, allow_unknown_opt_params=True)
        if pdu.command == "deliver_sm":
            self._on_deliver_sm(pdu)
        elif pdu.command == "enquire_link":
            self._answer(pdu, "enquire_link_resp", 0)
        elif pdu.command == "unbind":
            self._answer(pdu, "unbind_resp", 0)
            self.unbound_by_server = True
        elif pdu.command.endswith("_resp") or pdu.command == "generic_nack":
            self._responses[pdu.sequence] = pdu

    def _on_deliver_sm(self, pdu: smpplib.command.DeliverSM) -> None:
        if self.refuse_deliveries:
            self._answer(pdu, "deliver_sm_resp", 0x64)  # ESME_RX_T_APPN: keep it for later
            return
        self.delivered.append(
            Delivered(
                esm_class=int(pdu.esm_class),
                source_addr=_str(pdu.source_addr),
                destination_addr=_str(pdu.destination_addr),
                data_coding=int(pdu.data_coding or 0),
                short_message=bytes(pdu.short_message or getattr(pdu, "message_payload", None) or b""),
                receipted_message_id=_str(pdu.receipted_message_id) if getattr(pdu, "receipted_message_id", None)
                else None,
                message_state=getattr(pdu, "message_state", None),
            )
        )
        self._answer(pdu, "deliver_sm_resp", 0)

    def _answer(self, request: Any, command: str, status: int) -> None:
        response = smpplib.smpp.make_pdu(command, client=self.client, status=status)
        response.sequence = request.sequence
        self.client.send_pdu(response)
