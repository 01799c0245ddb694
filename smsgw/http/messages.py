"""What the REST API and the portal both do with an account's stored messages, written once: a keyset page of a
search with its opaque cursor, the CSV of a search (`smsgw history export`'s writer), and cancelling a message.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
from collections.abc import AsyncIterator, Iterable

from smsgw.scheduler.history import write_history_csv
from smsgw.scheduler.model import ListedMessage, MessageFilter
from smsgw.scheduler.store import MessageStore

log = logging.getLogger(__name__)


def encode_cursor(key: tuple[int, int]) -> str:
    return base64.urlsafe_b64encode(f"{key[0]}.{key[1]}".encode()).decode().rstrip("=")


def decode_cursor(value: str) -> tuple[int, int]:
    """The key of `encode_cursor`; ValueError for anything else (a cursor is opaque to clients)."""
    try:
        submitted, _, rowid = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode().partition(".")
        return int(submitted), int(rowid)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("not a cursor this gateway gave") from None


async def search_page(
    store: MessageStore, account: str, where: MessageFilter, after: tuple[int, int] | None, limit: int
) -> tuple[list[ListedMessage], str | None]:
    """A page of the account's messages matching `where` after the key `after`, and the cursor of the next page
    (None on the last page)."""
    # One row more than the page: whether a next page exists, so the last page says so (no empty page after).
    page = await store.list_messages(account, where, after, limit + 1)
    next_cursor = encode_cursor(page[limit - 1].key) if len(page) > limit else None
    del page[limit:]
    return page, next_cursor


def history_csv(page: Iterable[ListedMessage], *, header: bool = True) -> str:
    """The rows as `smsgw history export` writes them, header first unless `header` is False."""
    out = io.StringIO()
    write_history_csv((listed.history for listed in page), out, header=header)
    return out.getvalue()


async def search_csv(
    store: MessageStore, account: str, where: MessageFilter, page_size: int
) -> AsyncIterator[str]:
    """The whole search as CSV, page by page (keyset pages: a long export never holds more than one)."""
    after: tuple[int, int] | None = None
    header = True
    while True:
        page = await store.list_messages(account, where, after, page_size)
        if page or header:
            yield history_csv(page, header=header)
        if len(page) < page_size:
            return
        after, header = page[-1].key, False


async def cancel_message(store: MessageStore, account: str, message_id: str, now_ms: int, via: str) -> int:
    """Cancel the account's message (every destination) not yet handed to a modem or route; its charge is
    refunded. NotCancellable when it is too late or not the account's. `via` names the face, for the log."""
    count = await store.cancel(account, message_id, "", "", now_ms)
    log.info("cancelled account=%s message_id=%s via=%s", account, message_id, via)
    return count
