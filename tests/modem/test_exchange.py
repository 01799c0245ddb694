"""CommandExchange alone, over an in-memory stream: the request/response half of the driver."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from smsgw.config import ModemConfig
from smsgw.modem.at import Unsolicited
from smsgw.modem.exchange import CommandExchange, CommandTimeout


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def _opened() -> tuple[CommandExchange, trio.abc.Stream, trio.abc.Stream]:
    """An exchange open on one end of an in-memory stream pair: (exchange, its end, the modem's end)."""
    exchange = _exchange([], [])
    ours, modem = trio.testing.memory_stream_pair()
    exchange.open(ours)
    return exchange, ours, modem


def _exchange(hung: list[str], wakes: list[bool]) -> CommandExchange:
    config = ModemConfig(name="m1", port="/dev/null", watchdog_failures=2)
    exchange: CommandExchange = CommandExchange(
        "m1", config, on_hung=hung.append, on_command=lambda: wakes.append(exchange.command_waiting)
    )
    return exchange


async def test_unanswered_commands_in_a_row_declare_the_modem_hung(clock: trio.testing.MockClock) -> None:
    hung: list[str] = []
    wakes: list[bool] = []
    exchange = _exchange(hung, wakes)
    ours, _modem = trio.testing.memory_stream_pair()
    exchange.open(ours)
    with pytest.raises(CommandTimeout):
        await exchange.command("AT", 1.0)
    assert hung == []
    with pytest.raises(CommandTimeout):
        await exchange.command("AT+CSQ", 1.0)
    assert hung == ["2 commands in a row unanswered, last AT+CSQ"]
    # Told before each write, with the command already waiting: a reader held back must read its answer.
    assert wakes == [True, True]


async def test_the_answer_goes_to_the_command_and_codes_back_to_the_reader(clock: trio.testing.MockClock) -> None:
    exchange, ours, modem = _opened()
    codes: list[Unsolicited] = []

    async def reader() -> None:
        while True:
            codes.extend(exchange.receive_data(await ours.receive_some()))

    async def fake_modem() -> None:
        assert await modem.receive_some() == b"AT+CSQ\r"
        # A code the modem printed before the answer (TS 27.005 +CMTI) is not part of it.
        await modem.send_all(b'\r\n+CMTI: "SM",1\r\n\r\n+CSQ: 20,99\r\n\r\nOK\r\n')

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        nursery.start_soon(fake_modem)
        response = await exchange.command("AT+CSQ")
        nursery.cancel_scope.cancel()
    assert response.ok
    assert list(response.values("+CSQ:")) == ["20,99"]
    assert [(code.name, code.params) for code in codes] == [("+CMTI", '"SM",1')]
    assert exchange.timeouts_in_a_row == 0


async def test_a_closed_session_refuses_commands(clock: trio.testing.MockClock) -> None:
    exchange = _exchange([], [])
    with pytest.raises(trio.ClosedResourceError):
        await exchange.command("AT")
    assert not exchange.command_waiting  # abandoned, so the next session starts clean


async def test_under_the_session_timer_a_command_times_out_at_its_own_deadline(
    clock: trio.testing.MockClock,
) -> None:
    exchange, ours, modem = _opened()

    async def reader() -> None:
        while True:
            exchange.receive_data(await ours.receive_some())

    async def fake_modem() -> None:
        assert await modem.receive_some() == b"AT+CSQ\r"
        await modem.send_all(b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n")
        await trio.sleep_forever()  # the next command gets no answer

    async with trio.open_nursery() as nursery:
        nursery.start_soon(exchange.end_waits_at_deadlines)
        nursery.start_soon(reader)
        nursery.start_soon(fake_modem)
        await trio.testing.wait_all_tasks_blocked()
        assert (await exchange.command("AT+CSQ", 5.0)).ok  # the timer now sleeps until this one's deadline
        start = trio.current_time()
        with pytest.raises(CommandTimeout):
            await exchange.command("AT", 1.0)  # an earlier deadline: brought forward
        assert trio.current_time() == start + 1.0
        nursery.cancel_scope.cancel()
    assert exchange.timeouts_in_a_row == 1


async def test_a_command_outlasting_the_session_timer_still_waits_until_its_deadline(
    clock: trio.testing.MockClock,
) -> None:
    exchange, ours, modem = _opened()

    async def session() -> None:
        async with trio.open_nursery() as tasks:
            tasks.start_soon(exchange.end_waits_at_deadlines)
            await modem.receive_some()
            await trio.sleep(0.5)  # the command waits for its answer
            tasks.cancel_scope.cancel()  # the session ends, its timer with it

    async with trio.open_nursery() as nursery:
        nursery.start_soon(session)
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        with trio.fail_after(10), pytest.raises(CommandTimeout):  # not waiting forever
            await exchange.command("AT", 1.0)
        assert trio.current_time() == start + 1.0
