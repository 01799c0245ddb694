"""The outbox's records as JSON text: what waits for an ESME (a receipt, an MO) is stored as one text column, so
every engine stores the same thing and an item written by one node is read by another."""

from __future__ import annotations

import json
from typing import Final

from smsgw.scheduler.model import Address, MoRecord, ReceiptRecord
from smsgw.scheduler.states import State

RECEIPT: Final = "receipt"
MO: Final = "mo"


def kind(record: ReceiptRecord | MoRecord) -> str:
    """The outbox `kind` column of a record."""
    return MO if isinstance(record, MoRecord) else RECEIPT


def encode(record: ReceiptRecord | MoRecord) -> str:
    if isinstance(record, MoRecord):
        return json.dumps(
            {
                "mo_rowid": record.mo_rowid,
                "originator": record.originator,
                "recipient": record.recipient,
                "text": record.text,
                "data_coding": record.data_coding,
                "user_data": record.user_data.hex(),
                "received_ms": record.received_ms,
                "flash": record.flash,
            }
        )
    return json.dumps(
        {
            "message_id": record.message_id,
            "source": [record.source.addr, record.source.ton, record.source.npi],
            "destination": [record.destination.addr, record.destination.ton, record.destination.npi],
            "state": int(record.state),
            "error_code": record.error_code,
            "submitted_ms": record.submitted_ms,
            "done_ms": record.done_ms,
            "submitted_segments": record.submitted_segments,
            "delivered_segments": record.delivered_segments,
            "text": record.text,
            "service_type": record.service_type,
        }
    )


def decode(kind_: str, text: str) -> ReceiptRecord | MoRecord:
    data = json.loads(text)
    if kind_ == MO:
        return MoRecord(**{**data, "user_data": bytes.fromhex(data["user_data"])})
    return ReceiptRecord(
        **{
            **data,
            "source": Address(*data["source"]),
            "destination": Address(*data["destination"]),
            "state": State(data["state"]),
        }
    )
