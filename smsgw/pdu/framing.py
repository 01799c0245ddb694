"""Splitting a TCP byte stream into whole SMPP PDUs, with the length checks that protect the reader."""

from __future__ import annotations

import struct
from typing import Final

from smsgw.pdu.constants import HEADER_LENGTH, CommandStatus
from smsgw.pdu.errors import InvalidField

_HEADER: Final = struct.Struct(">IIII")
_LENGTH: Final = struct.Struct(">I")


def peek_header(data: bytes | bytearray | memoryview) -> tuple[int, int, int, int]:
    """(command_length, command_id, command_status, sequence_number) of the first 16 octets, nothing checked."""
    if len(data) < HEADER_LENGTH:
        raise InvalidField(
            f"{len(data)} octets is shorter than the 16-octet header", command_status=CommandStatus.ESME_RINVCMDLEN
        )
    command_length, command_id, command_status, sequence_number = _HEADER.unpack_from(data)
    return command_length, command_id, command_status, sequence_number


class PduFramer:
    """Feed it received octets; it returns the complete PDUs (header included) in order.

    A command_length below 16 or above `max_length` is an `InvalidField(ESME_RINVCMDLEN)` carrying the sequence
    number when 16 octets of that header have arrived. The stream cannot be resynchronised after that: the session
    should answer with generic_nack and close. Whole PDUs that came before the bad length are never lost: `feed`
    returns them and keeps the error in `error` (check it after handling them); with none to return it raises the
    error at once. Every later `feed` raises it.
    """

    def __init__(self, max_length: int) -> None:
        if max_length < HEADER_LENGTH:
            raise ValueError(f"max_length {max_length} below the 16-octet header")
        self.max_length = max_length
        self._buffer = bytearray()
        self.error: InvalidField | None = None

    @property
    def buffered(self) -> int:
        """Octets received that are not yet part of a returned PDU."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray) -> list[bytes]:
        if self.error is not None:
            raise self.error
        buffer = self._buffer
        # The usual read starts at a PDU boundary: its PDUs are sliced straight out of `data` (one copy each);
        # only a partial PDU left over from the last read makes the bytes go through the buffer.
        source: bytes | bytearray
        if buffer or data.__class__ is not bytes:
            buffer += data
            source = buffer
        else:
            source = data
        pdus: list[bytes] = []
        start = 0
        available = len(source)
        max_length = self.max_length
        while available - start >= 4:
            (length,) = _LENGTH.unpack_from(source, start)
            if length < HEADER_LENGTH or length > max_length:
                self._keep(source, start)
                self.error = self._reject(length)
                if pdus:
                    return pdus
                raise self.error
            if available - start < length:
                break
            frame = source[start : start + length]
            pdus.append(frame if isinstance(frame, bytes) else bytes(frame))
            start += length
        self._keep(source, start)
        return pdus

    def _keep(self, source: bytes | bytearray, start: int) -> None:
        """Make the buffer hold `source[start:]`, what is not part of a returned PDU."""
        if source is self._buffer:
            if start:
                del self._buffer[:start]
        elif start < len(source):
            self._buffer += source[start:]

    def _reject(self, length: int) -> InvalidField:
        sequence_number = None
        if len(self._buffer) >= HEADER_LENGTH:
            sequence_number = peek_header(self._buffer)[3]
        return InvalidField(
            f"command_length {length} outside {HEADER_LENGTH}..{self.max_length}",
            command_status=CommandStatus.ESME_RINVCMDLEN,
            sequence_number=sequence_number,
        )
