"""`SessionShell`: the Trio machinery of one SMPP stream around its sans-IO `SmppSession`, for either role.

One reader task (bytes in, events out) and one timer task sleeping until the session's next deadline; all writes
go through one outgoing buffer written by one writer at a time, so PDUs queued together leave in one write and a
peer that does not read holds up one task. The server's connections (`smsc_connection.py`, the SMSC role) and the
gateway's binds to upstream SMSCs (`upstream.py`, the ESME role) are subclasses: they say what an event means
(`_handle_events`), what happens at the peer's EOF (`_before_eof`) and at the end (`_cleanup`).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Final

import trio

from smsgw.pdu.smpp import Pdu
from smsgw.smpp_server.session import SmppSession
from smsgw.smpp_server.states import BIND_RESPONSES, BindState

log = logging.getLogger(__name__)

_RECEIVE_BYTES: Final = 65536
# Above this many unwritten octets the reader stops reading: a peer that does not read its answers is not fed more.
OUTBOX_HIGH_WATER: Final = 65536
_RESPONSE_BIT: Final = 0x80000000


class SessionShell:
    """One TCP/TLS stream and its session. `run` owns the reader and the timer task until the stream ends."""

    def __init__(self, stream: trio.abc.Stream, session: SmppSession, source: str) -> None:
        self.stream = stream
        self.session = session
        self.source = source
        self._send_lock = trio.Lock()
        self._outbox = bytearray()
        self._drained = trio.Event()
        self._timer_scope = trio.CancelScope()
        self._receive_scope = trio.CancelScope()
        self._closing = False
        self.closed = trio.Event()

    # ---- what a role says -----------------------------------------------------------------------------------

    async def _handle_events(self) -> None:
        """Take the session's events (after a read or a timer) and act on them."""
        raise NotImplementedError

    async def _before_eof(self) -> None:
        """The peer closed its side; the session has not been told yet (what is still to be written, is)."""

    async def _started(self) -> None:
        """Runs once the timer task is up, before the first read (e.g. an outbind or a bind request)."""

    async def _cleanup(self) -> None:
        """After the reader and timer ended (shielded by the caller): release what the role holds, close the
        stream."""
        with trio.move_on_after(1):
            await self.stream.aclose()

    # ---- main loop -----------------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._timer_loop)
                try:
                    await self._started()
                    await self._read_loop()
                finally:
                    # Operations still running (only if the wait for them at close ran out) finish against a
                    # closed session: their answers are dropped.
                    if self.session.state is not BindState.CLOSED:
                        self.session.close()
                    # The timer task ends with the reader, wherever it is: it may not even have started yet (a
                    # first read that is the EOF), and would then sleep towards the closed session's `math.inf`.
                    nursery.cancel_scope.cancel()
        except Exception:  # a task boundary: a bug seen by one connection ends that connection only
            log.exception("connection failed source=%s", self.source)
        finally:
            with trio.CancelScope(shield=True):
                self.closed.set()
                await self._cleanup()

    async def _read_loop(self) -> None:
        while self.session.state is not BindState.CLOSED and not self._closing:
            # Only the wait for data is cancellable by `close()`: a PDU being written is never cut off.
            with trio.CancelScope() as self._receive_scope:
                while len(self._outbox) >= OUTBOX_HIGH_WATER:
                    self._drained = trio.Event()
                    await self._drained.wait()
                try:
                    data = await self.stream.receive_some(_RECEIVE_BYTES)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
            if self._receive_scope.cancelled_caught:
                return
            if not data:
                await self._before_eof()
            self.session.receive_data(bytes(data), trio.current_time())  # no copy: trio streams give bytes
            await self._handle_events()

    async def _timer_loop(self) -> None:
        while True:
            with trio.CancelScope(deadline=self.session.next_deadline()) as self._timer_scope:
                await trio.sleep_forever()
            if self.session.state is BindState.CLOSED:
                return
            self.session.handle_timers(trio.current_time())
            await self._handle_events()

    def _reschedule(self) -> None:
        deadline = self.session.next_deadline()
        if deadline != self._timer_scope.deadline:
            self._timer_scope.deadline = deadline

    def close(self) -> None:
        """Stop reading; `run` then cleans up."""
        self._closing = True
        self._receive_scope.cancel()

    # ---- writing -------------------------------------------------------------------------------------------

    def _queue(self, pdu: Pdu) -> bool:
        """Encode `pdu` into the outgoing buffer (numbering and accounting happen here, with no await between)."""
        if self.session.state is BindState.CLOSED:
            return False
        self._outbox += self.session.send(pdu, trio.current_time())
        if not pdu.command_id & _RESPONSE_BIT or pdu.command_id in BIND_RESPONSES:
            # Only a request (a new response deadline) or a bind response (the session-init timer) can bring the
            # deadline forward; anything else only postpones it, and the timer task re-reads it when it wakes.
            self._reschedule()
        return True

    async def flush(self, *, wait: bool = False) -> None:
        """Write the outgoing buffer. One writer at a time: a task that finds another writing leaves its bytes to
        that writer (which loops until the buffer is empty), so PDUs finished together go out in one write and a
        peer that does not read holds up one task. The reader stops reading while the buffer is above its
        high-water mark. With `wait`, return only once the buffer is written (or the write failed), e.g. before
        closing the stream."""
        lock = self._send_lock
        if not lock.locked():
            lock.acquire_nowait()  # not `async with`: its checkpoint would be a scheduler pass per write
        elif wait:
            await lock.acquire()
        else:
            return
        try:
            while self._outbox:
                data = bytes(self._outbox)
                self._outbox.clear()
                try:
                    await self.stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._outbox.clear()
                    self.close()
                finally:
                    self._drained.set()
        finally:
            lock.release()

    async def _send(self, pdu: Pdu) -> bool:
        if not self._queue(pdu):
            return False
        await self.flush()
        return True

    async def _send_request(self, pdu: Pdu) -> Pdu | None:
        """Number `pdu` and send it; returns it as sent, or None if the connection is gone."""
        numbered = replace(pdu, sequence_number=self.session.new_sequence_number())
        return numbered if await self._send(numbered) else None
