"""Command exchange: AT commands one at a time over one open port, the Trio shell's request/response half.

A command goes out under a lock with its reply queue existing before the bytes are written (zigpy-znp's
`request()`), so an answer however fast is never missed; it waits until its deadline from `AtChannel` and no
longer. Unanswered commands are counted: `watchdog_failures` in a row mean the modem hung, which ends the session
(the supervisor escalates). What the reader task parses arrives here through `receive_data`: answers go to the
waiting command, unsolicited codes back to the reader, whether or not a command waits.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Final

import trio

from smsgw.config import ModemConfig
from smsgw.modem.at import ESC, AtChannel, CommandTimedOut, Prompt, Response, Unsolicited

log = logging.getLogger(__name__)
wire_log = logging.getLogger("smsgw.wire")

_REPLY_BUFFER: Final = 2  # a command's prompt and its response


class _Wake:
    """What the session's timer hands a command waiting for its answer, in place of one."""


_EXPIRED: Final = _Wake()  # its deadline passed
_TIMER_STOPPED: Final = _Wake()  # the session ended: it waits on until its deadline under a timer of its own


class CommandTimeout(Exception):
    def __init__(self, command: str) -> None:
        super().__init__(f"no answer to {command}")
        self.command = command


async def acquire_at_once(lock: trio.Lock | trio.Semaphore) -> None:
    """`lock.acquire()` without its scheduling point when it is free (a semaphore: has room): a cancelled task
    still stops here, and what the holder does next (write a command, wait for its answer) schedules anyway, so
    the yield only cost a round of the run loop per command. Fair as `acquire`: a release passes straight to a
    waiting task."""
    await trio.lowlevel.checkpoint_if_cancelled()
    try:
        lock.acquire_nowait()
    except trio.WouldBlock:
        await lock.acquire()


class CommandExchange:
    def __init__(
        self,
        name: str,
        config: ModemConfig,
        *,
        on_hung: Callable[[str], None],
        on_command: Callable[[], None],
    ) -> None:
        """`on_hung(reason)`: too many commands in a row went unanswered. `on_command()`: a command is about to
        be written, so a reader that holds back (the receive path's backpressure) must read its answer."""
        self.name = name
        self._config = config
        self._on_hung = on_hung
        self._on_command = on_command
        self.lock = trio.Lock()
        self._at = AtChannel()
        self._replies_send, self._replies = trio.open_memory_channel[Response | Prompt | _Wake](_REPLY_BUFFER)
        self._timer: trio.CancelScope | None = None  # the sleep of `end_waits_at_deadlines`, while it runs
        self._stream: trio.abc.Stream | None = None
        self.timeouts_in_a_row = 0
        self.last_activity = 0.0
        self.partial_answer: tuple[str, ...] = ()  # what a timed-out command got before its deadline

    @property
    def command_waiting(self) -> bool:
        """A command was written and waits for its answer (which only the reader can bring)."""
        return self._at.busy

    def add_unsolicited(self, table: dict[str, int]) -> None:
        """The model's own unsolicited prefixes (its quirks: prefix -> data lines after it), recognised from now on."""
        self._at.add_unsolicited(table)

    # -- one session on one open port ---------------------------------------------------------------------

    def open(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self._at.reset()
        while True:  # answers that arrived after their command was abandoned in the previous session
            try:
                self._replies.receive_nowait()
            except trio.WouldBlock:
                break
        self.timeouts_in_a_row = 0
        self.last_activity = trio.current_time()

    def close(self) -> None:
        self._stream = None
        self._at.reset()

    def receive_data(self, data: bytes | bytearray) -> list[Unsolicited]:
        """In the reader task: `data` read from the port; answers go to the waiting command, unsolicited codes
        are returned."""
        self.last_activity = trio.current_time()
        if wire_log.isEnabledFor(logging.DEBUG):
            wire_log.debug("rx modem=%s data=%r", self.name, data)
        unsolicited: list[Unsolicited] = []
        for event in self._at.receive_data(data):
            if isinstance(event, Unsolicited):
                unsolicited.append(event)
            elif isinstance(event, Response | Prompt):
                self._replies_send.send_nowait(event)
        return unsolicited

    async def escape(self) -> None:
        """ESC, which ends a `> ` prompt left open without sending and which a modem in command mode ignores."""
        stream = self._stream
        if stream is not None:
            await stream.send_all(ESC)
            await trio.sleep(self._config.escape_settle_s)

    # -- commands -----------------------------------------------------------------------------------------

    async def command(self, command: str, timeout_s: float | None = None) -> Response:
        """Run one AT command; raises `CommandTimeout`. The answer may be an error: check `Response.ok`."""
        await acquire_at_once(self.lock)
        try:
            reply = await self.exchange(command, timeout_s=timeout_s)
        finally:
            self.lock.release()
        if isinstance(reply, Prompt):
            raise CommandTimeout(command)  # a prompt nobody asked for: the channel is out of step
        return reply

    async def exchange(
        self, command: str, *, timeout_s: float | None = None, expects_prompt: bool = False
    ) -> Response | Prompt:
        """Under the lock: write `command`, wait for its prompt or response."""
        data = self._at.command(
            command,
            trio.current_time(),
            timeout_s if timeout_s is not None else self._config.command_timeout_s,
            expects_prompt=expects_prompt,
        )
        self._on_command()
        return await self._write_and_wait(command, data)

    async def send_pdu(self, command: str, pdu_hex: str, timeout_s: float) -> Response | Prompt:
        """Under the lock, after `command`'s prompt: the PDU and Ctrl-Z, then the final answer."""
        body = self._at.pdu_body(pdu_hex, trio.current_time(), timeout_s)
        return await self._write_and_wait(command, body)

    async def _write_and_wait(self, command: str, data: bytes) -> Response | Prompt:
        stream = self._stream
        if stream is None:
            self._at.abandon()
            raise trio.ClosedResourceError("modem port is not open")
        # The reply queue exists before the write, so an answer however fast is never missed.
        if wire_log.isEnabledFor(logging.DEBUG):
            wire_log.debug("tx modem=%s data=%r", self.name, data)
        # Read before writing: a fast modem's answer may be parsed (and the deadline cleared) during send_all.
        deadline = self._at.deadline
        assert deadline is not None
        answer: Response | Prompt | _Wake = _EXPIRED
        try:
            await stream.send_all(data)
            timer = self._timer
            if timer is None:
                with trio.move_on_at(deadline):
                    answer = await self._replies.receive()
            elif trio.current_time() < deadline:  # else the timer found no command waiting at the deadline
                if deadline < timer.deadline:
                    timer.deadline = deadline
                answer = await self._replies.receive()
                if answer is _TIMER_STOPPED:
                    with trio.move_on_at(deadline):
                        answer = await self._replies.receive()
        except BaseException:
            self._at.abandon()
            raise
        if isinstance(answer, Response | Prompt):
            self.timeouts_in_a_row = 0
            return answer
        try:
            # It may have arrived between the deadline and now.
            late = self._replies.receive_nowait()
        except trio.WouldBlock:
            pass
        else:
            assert not isinstance(late, _Wake)  # handed only to a command waiting, never queued
            self.timeouts_in_a_row = 0
            return late
        for event in self._at.expire(trio.current_time()):
            if isinstance(event, CommandTimedOut) and event.lines:
                log.debug("timed out with partial answer modem=%s lines=%r", self.name, event.lines)
                self.partial_answer = event.lines
        self.timeouts_in_a_row += 1
        log.warning("command timed out modem=%s command=%s in_a_row=%d", self.name, command, self.timeouts_in_a_row)
        if self.timeouts_in_a_row >= self._config.watchdog_failures:
            self._on_hung(f"{self.timeouts_in_a_row} commands in a row unanswered, last {command}")
        raise CommandTimeout(command)

    async def end_waits_at_deadlines(self) -> None:
        """A session task: ends a command's wait for its answer at its deadline, so that a command needs no timer
        (a cancel scope, ~12 us of the Trio thread) of its own; without this task a command waits under one. It
        sleeps until the deadline of the command outstanding when it went to sleep, then looks again: commands
        answered in time cost it nothing, and one with an earlier deadline brings its sleep forward."""
        try:
            while True:
                deadline = self._at.deadline
                if deadline is None or deadline <= trio.current_time():
                    # None outstanding, or one whose write outlasted its deadline: it sees that itself when the
                    # write returns. The next command brings this sleep forward.
                    deadline = math.inf
                with trio.CancelScope(deadline=deadline) as self._timer:
                    await trio.sleep_forever()
                self._timer = None
                outstanding = self._at.deadline
                if (
                    outstanding is not None
                    and trio.current_time() >= outstanding
                    and self._replies.statistics().tasks_waiting_receive
                ):
                    self._replies_send.send_nowait(_EXPIRED)  # straight to the waiting command, never queued
        finally:
            self._timer = None
            if self._replies.statistics().tasks_waiting_receive:  # a sender's command, outside the session
                self._replies_send.send_nowait(_TIMER_STOPPED)

    # -- watchdog -----------------------------------------------------------------------------------------

    async def watchdog(self) -> None:
        """`AT` whenever the port was quiet for `watchdog_interval_s`; its timeouts count like any command's."""
        while True:
            idle_from = self.last_activity + self._config.watchdog_interval_s
            if trio.current_time() < idle_from:
                await trio.sleep_until(idle_from)
                continue
            try:
                await self.command("AT", self._config.watchdog_timeout_s)
            except CommandTimeout:
                pass  # counted by _write_and_wait, which declares the modem hung
            self.last_activity = max(self.last_activity, trio.current_time())
