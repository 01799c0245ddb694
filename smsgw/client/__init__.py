"""`smsgw send` and `smsgw receive`: SMPP clients for people and scripts, on smpplib's PDU classes and a blocking
socket.

The pure parts (`messages`: reading a numbers file, normalised as the gateway's policy does, tracking receipts,
rendering progress and the summary) take values and return values; `session` is the bind over smpplib that both
commands use, and `send` (`SmppSender`, `send_batch`) and `receive` (`SmppReceiver`) are the thin I/O shells.
Every public name is re-exported here, so callers import `smsgw.client`.
"""

from smsgw.client.messages import (
    SUMMARY_ROWS,
    Failure,
    Outcome,
    ReceiptTracker,
    Recipient,
    RecipientList,
    RejectedLine,
    SubmitPart,
    SubmitResult,
    format_summary,
    number_list,
    read_recipients,
    render_progress,
    split_text,
    whole_text,
)
from smsgw.client.receive import Received, SmppReceiver, read_deliver_sm
from smsgw.client.send import SendReport, SmppSender, send_batch
from smsgw.client.session import SMPPLIB_LOGGER, ClientSettings, SendError

__all__ = [
    "SMPPLIB_LOGGER",
    "SUMMARY_ROWS",
    "ClientSettings",
    "Failure",
    "Outcome",
    "ReceiptTracker",
    "Received",
    "Recipient",
    "RecipientList",
    "RejectedLine",
    "SendError",
    "SendReport",
    "SmppReceiver",
    "SmppSender",
    "SubmitPart",
    "SubmitResult",
    "format_summary",
    "number_list",
    "read_deliver_sm",
    "read_recipients",
    "render_progress",
    "send_batch",
    "split_text",
    "whole_text",
]
