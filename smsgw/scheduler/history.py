"""`smsgw history export`: a customer's delivery records as CSV, streamed (no full load), oldest first."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, Final, TextIO

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


def write_history_csv(rows: Iterable[tuple[Any, ...]], out: TextIO) -> int:
    """Write the rows of `SqliteStore.history_rows` with a header; returns how many messages were written."""
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    count = 0
    for message_id, dest_index, account, source, destination, submitted, state, final, error, segments, charged, text in rows:
        writer.writerow(
            (
                message_id,
                dest_index,
                account,
                source,
                destination,
                from_ms(submitted).isoformat(),
                State(state).name,
                "" if final is None else from_ms(final).isoformat(),
                f"{error:03d}",
                segments,
                format_micro(charged),
                text,
            )
        )
        count += 1
    return count
