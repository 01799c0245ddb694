"""The one exception type of the codec: bad input never raises anything else.

Every error carries the SMPP `command_status` a peer should be answered with, and the PDU's sequence number when
its header could be read, so a session can reply (`generic_nack` or the matching `_resp`) without guessing.
"""

from __future__ import annotations

from typing import Final

# ESME_RSYSERR; a literal so this module needs nothing from constants.py (which imports it).
_ESME_RSYSERR: Final = 0x00000008


class PduError(Exception):
    """Bad SMPP/TPDU input or a value that cannot be encoded."""

    def __init__(
        self,
        message: str,
        *,
        command_status: int = _ESME_RSYSERR,
        sequence_number: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.command_status = command_status
        self.sequence_number = sequence_number

    def __str__(self) -> str:
        if self.sequence_number is None:
            return f"{self.message} (command_status=0x{self.command_status:08X})"
        return f"{self.message} (command_status=0x{self.command_status:08X}, sequence_number={self.sequence_number})"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, command_status=0x{self.command_status:08X}, "
            f"sequence_number={self.sequence_number!r})"
        )


class InvalidField(PduError):
    """One field breaks its rule (length, range, format); `command_status` names the field's own error code."""
