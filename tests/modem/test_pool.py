from __future__ import annotations

import pytest
import trio
import trio.testing

from smsgw.config import ModemConfig
from smsgw.modem.driver import ModemDriver, ModemState
from smsgw.modem.pool import ModemPool
from smsgw.modem.seams import OutgoingSms, SendFailed, Sent
from smsgw.pdu.text import Encoding, encode_text
from smsgw.pdu.udh import Concatenation, concatenation_udh

from modem_fakes import RecordingSink, ScriptedModem, lines, memory_opener


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def _sms(group: str = "default") -> OutgoingSms:
    return OutgoingSms(
        segment_id="s", destination="447700900555", data_coding=0, user_data=encode_text("hi", Encoding.GSM7),
        modem_group=group,
    )


async def _pool(nursery: trio.Nursery, modems: dict[str, tuple[ScriptedModem, str]], **config: object) -> ModemPool:
    sink = RecordingSink()
    drivers = [
        ModemDriver(
            ModemConfig(name=name, port=f"/dev/{name}", group=group, **config),  # type: ignore[arg-type]
            sink,
            opener=memory_opener(modem, nursery),
            quirks_table=(),
        )
        for name, (modem, group) in modems.items()
    ]
    pool = ModemPool(drivers)
    await nursery.start(pool.run)
    for driver in drivers:
        await driver.wait_state(ModemState.READY)
    return pool


async def test_spreads_load_and_respects_groups(clock: trio.testing.MockClock) -> None:
    a, b, c = ScriptedModem(), ScriptedModem(), ScriptedModem()
    async with trio.open_nursery() as nursery:
        pool = await _pool(nursery, {"a": (a, "uk"), "b": (b, "uk"), "c": (c, "cn")})
        outcomes = [await pool.send(_sms("uk")) for _ in range(6)]
        assert all(isinstance(o, Sent) for o in outcomes)
        assert (len(a.pdus), len(b.pdus), len(c.pdus)) == (3, 3, 0)
        assert isinstance(await pool.send(_sms("cn")), Sent)
        assert len(c.pdus) == 1
        missing = await pool.send(_sms("nowhere"))
        assert isinstance(missing, SendFailed) and missing.temporary
        statuses = {s.name: s for s in pool.status()}
        assert statuses["a"].sent == 3 and statuses["a"].state is ModemState.READY
        assert statuses["c"].operator == "Fake Net"
        nursery.cancel_scope.cancel()


async def test_temporary_failure_retried_on_another_modem(clock: trio.testing.MockClock) -> None:
    broken, good = ScriptedModem(), ScriptedModem()
    broken.cmgs_answer = lambda pdu: "\r\n+CMS ERROR: 42\r\n"  # congestion on this SIM's cell
    good.cmgs_answer = lambda pdu: lines("+CMGS: 9")
    async with trio.open_nursery() as nursery:
        pool = await _pool(nursery, {"broken": (broken, "default"), "good": (good, "default")})
        for _ in range(2):
            outcome = await pool.send(_sms())
            assert isinstance(outcome, Sent) and outcome.modem == "good"
        assert len(broken.pdus) == 1  # tried once, then the least used healthy modem is preferred
        nursery.cancel_scope.cancel()


async def test_permanent_failure_not_retried(clock: trio.testing.MockClock) -> None:
    a, b = ScriptedModem(), ScriptedModem()
    a.cmgs_answer = b.cmgs_answer = lambda pdu: "\r\n+CMS ERROR: 1\r\n"  # unassigned number
    async with trio.open_nursery() as nursery:
        pool = await _pool(nursery, {"a": (a, "default"), "b": (b, "default")})
        outcome = await pool.send(_sms())
        assert isinstance(outcome, SendFailed) and not outcome.temporary and outcome.cms_error == 1
        assert len(a.pdus) + len(b.pdus) == 1
        nursery.cancel_scope.cancel()


async def test_modem_at_its_limit_is_skipped(clock: trio.testing.MockClock) -> None:
    a, b = ScriptedModem(), ScriptedModem()
    async with trio.open_nursery() as nursery:
        pool = await _pool(nursery, {"a": (a, "default"), "b": (b, "default")}, messages_per_day=1)
        assert isinstance(await pool.send(_sms()), Sent)
        assert isinstance(await pool.send(_sms()), Sent)
        exhausted = await pool.send(_sms())
        assert isinstance(exhausted, SendFailed) and exhausted.temporary
        assert (len(a.pdus), len(b.pdus)) == (1, 1)
        assert {s.limit_reached for s in pool.status()} == {"per_day"}
        nursery.cancel_scope.cancel()


def test_names_must_be_unique() -> None:
    config = ModemConfig(name="x", port="/dev/x")
    with pytest.raises(ValueError, match="unique"):
        ModemPool([ModemDriver(config, RecordingSink(), quirks_table=()) for _ in range(2)])


def _part(sequence: int, total: int = 3, reference: int = 42) -> OutgoingSms:
    return OutgoingSms(
        segment_id=f"p{sequence}", destination="447700900555", data_coding=0,
        user_data=encode_text(f"part {sequence}", Encoding.GSM7),
        udh=concatenation_udh(Concatenation(reference, total, sequence)),
    )


async def test_parts_of_a_message_leave_through_one_modem(clock: trio.testing.MockClock) -> None:
    a, b, c = ScriptedModem(), ScriptedModem(), ScriptedModem()
    async with trio.open_nursery() as nursery:
        pool = await _pool(nursery, {"a": (a, "default"), "b": (b, "default"), "c": (c, "default")})
        outcomes: list[object] = []

        async def send(sms: OutgoingSms) -> None:
            outcomes.append(await pool.send(sms))

        async with trio.open_nursery() as senders:
            for sequence in (1, 2, 3):
                senders.start_soon(send, _part(sequence))
            senders.start_soon(send, _sms())  # unrelated traffic still spreads
            senders.start_soon(send, _part(1, total=2, reference=7))
        modems = {o.modem for o in outcomes[:5] if isinstance(o, Sent)}
        assert len(outcomes) == 5 and all(isinstance(o, Sent) for o in outcomes)
        pdus_per_modem = sorted(len(m.pdus) for m in (a, b, c))
        assert pdus_per_modem[-1] >= 3  # the three parts of reference 42 on one modem
        assert len(modems) >= 2
        nursery.cancel_scope.cancel()


async def test_part_follows_to_another_modem_when_its_modem_fails(clock: trio.testing.MockClock) -> None:
    a, b = ScriptedModem(), ScriptedModem()
    async with trio.open_nursery() as nursery:
        pool = await _pool(nursery, {"a": (a, "default"), "b": (b, "default")})
        first = await pool.send(_part(1, total=2))
        assert isinstance(first, Sent)
        pinned = a if first.modem == "a" else b
        other = b if pinned is a else a
        pinned.cmgs_answer = lambda pdu: "\r\n+CMS ERROR: 331\r\n"  # no network service
        second = await pool.send(_part(2, total=2))
        assert isinstance(second, Sent) and second.modem != first.modem
        assert len(other.pdus) == 1
        nursery.cancel_scope.cancel()
