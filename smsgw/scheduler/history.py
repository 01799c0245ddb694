"""`smsgw history export`: a customer's delivery records as CSV, streamed (no full load), oldest first."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Final, TextIO

from smsgw.scheduler.model import HistoryRow
from smsgw.scheduler.routing import format_micro
from smsgw.scheduler.states import State
from smsgw.scheduler.timing import from_ms

COLUMNS: Final = (
    "message_id",
    "destination_index",
    "account",
    "source",
    "destination",
    "submitted_at",
    "state",
    "final_at",
    "error_code",
    "segments",
    "charged",
    "text",
)


def write_history_csv(rows: Iterable[HistoryRow], out: TextIO, *, header: bool = True) -> int:
    """Write the rows of `MessageStore.history_rows`, after a header unless `header` is False (the pages of one
    export after its first); returns how many messages were written."""
    writer = csv.writer(out)
    if header:
        writer.writerow(COLUMNS)
    count = 0
    for row in rows:
        writer.writerow(
            (
                row.message_id,
                row.dest_index,
                row.account,
                row.source_addr,
                row.destination_addr,
                from_ms(row.submitted_ms).isoformat(),
                State(row.state).name,
                "" if row.final_ms is None else from_ms(row.final_ms).isoformat(),
                f"{row.error_code:03d}",
                row.segment_count,
                format_micro(row.charged_micro),
                row.text,
            )
        )
        count += 1
    return count
