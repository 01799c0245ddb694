"""`smsgw resend`: destinations of an acknowledged submission that the balance could not cover are kept REJECTED
err 800 and re-submitted once, as a new batch with new ids, charged normally. A submission refused whole stores
nothing (DESIGN.md: rejected at submit, never stored)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
import trio
from trio.testing import MockClock

from smsgw.cli import main
from smsgw.config import AccountConfig, Config, RouteConfig, StoreConfig
from smsgw.modem.seams import SendFailed
from smsgw.passwords import hash_password
from smsgw.scheduler.model import NewMessage
from smsgw.scheduler.resend import resend_unpaid
from smsgw.scheduler.service import Scheduler
from smsgw.scheduler.sqlite_store import SqliteStore, open_store
from smsgw.scheduler.states import State
from smsgw.scheduler.timing import WallClock
from tests.scheduler.test_scheduler import START, FakeSender
from tests.scheduler.test_store import T0, new_message

CONFIG = Config(
    accounts=(AccountConfig("acme", "x"),),
    routes=(RouteConfig(name="uk", prefixes=("44",), price_per_segment=0.1),),
)
DAY_MS = 86_400_000
NOW = T0 + DAY_MS


def submission(*messages: NewMessage) -> list[NewMessage]:
    """`messages` as the destinations of one submission: the first one's message_id, each its dest_index."""
    return [replace(m, message_id=messages[0].message_id, dest_index=i) for i, m in enumerate(messages)]


async def test_unpaid_message_is_kept_rejected_800_uncharged_without_receipt(store: SqliteStore) -> None:
    await store.topup("acme", 150_000, T0)
    paid, unpaid = submission(new_message(price=100_000), new_message(price=100_000, segments=2))
    assert await store.accept([paid, unpaid]) == (True, False)
    _, kept = await store.find("acme", unpaid.message_id)
    assert kept.state is State.REJECTED and kept.error_code == 800 and kept.charged_micro == 0
    assert await store.balance("acme") == 50_000
    receipts = await store.outbox_fetch("acme", frozenset(), 10)
    assert len(receipts) == 0  # the ESME was refused with 0x400 and never got this id
    (listed,) = await store.unpaid_messages("acme", T0, T0 + 1)
    assert listed.message_id == unpaid.message_id and listed.segments == unpaid.segments
    assert await store.unpaid_messages("acme", T0 + 1, NOW) == []
    assert await store.unpaid_messages("other", T0, NOW) == []


async def test_a_submission_refused_whole_stores_nothing(store: SqliteStore) -> None:
    refused = [new_message(price=100_000), new_message(price=100_000)]
    assert await store.accept(refused) == (False, False)
    assert [await store.find("acme", m.message_id) for m in refused] == [[], []]
    assert await store.unpaid_messages("acme", T0, NOW) == []


async def test_resend_is_a_new_batch_charged_normally_and_once(store: SqliteStore) -> None:
    paid, *unpaid = submission(new_message(price=0), new_message(price=100_000), new_message(price=100_000, segments=2))
    assert await store.accept([paid, *unpaid]) == (True, False, False)
    await store.topup("acme", 350_000, NOW)
    outcomes = await resend_unpaid(store, CONFIG, "acme", T0, NOW, NOW)
    assert [o.old_id for o in outcomes] == [m.message_id for m in unpaid]
    assert all(o.new_id and o.new_id != o.old_id and not o.reason for o in outcomes)
    new_first, new_second = [(await store.find("acme", o.new_id or ""))[0] for o in outcomes]
    assert new_first.state is State.ACCEPTED and new_first.charged_micro == 100_000
    assert new_second.charged_micro == 200_000 and new_second.destination == unpaid[1].destination
    assert await store.balance("acme") == 50_000  # 0.1 per segment, 3 segments
    assert await resend_unpaid(store, CONFIG, "acme", T0, NOW, NOW + 1) == []  # each is resent once


async def test_resend_the_balance_still_cannot_cover_stays_unpaid(store: SqliteStore) -> None:
    paid, unpaid = submission(new_message(price=0), new_message(price=100_000))
    assert await store.accept([paid, unpaid]) == (True, False)
    (outcome,) = await resend_unpaid(store, CONFIG, "acme", T0, NOW, NOW)
    assert outcome.new_id is None and "insufficient balance" in outcome.reason
    (again,) = await store.unpaid_messages("acme", T0, NOW + 1)  # no second unpaid copy
    assert again.message_id == unpaid.message_id
    await store.topup("acme", 100_000, NOW)
    (outcome,) = await resend_unpaid(store, CONFIG, "acme", T0, NOW, NOW + 1)
    assert outcome.new_id is not None and await store.balance("acme") == 0


async def test_resend_applies_the_recipient_rules_and_routes_again(store: SqliteStore) -> None:
    opted_out = new_message(price=100_000, destination="447911000009")
    unrouted = new_message(price=100_000, destination="33612345678")
    two = [*submission(new_message(price=0), opted_out), *submission(new_message(price=0), unrouted)]
    assert await store.accept(two) == (True, False, True, False)
    opted_out, unrouted = two[1], two[3]
    await trio.to_thread.run_sync(store.policy_facts().suppress, "acme", "447911000009")
    await store.topup("acme", 1_000_000, NOW)
    outcomes = {o.old_id: o for o in await resend_unpaid(store, CONFIG, "acme", T0, NOW, NOW)}
    assert outcomes[unrouted.message_id].new_id is None and "no route" in outcomes[unrouted.message_id].reason
    rejected = outcomes[opted_out.message_id]
    assert rejected.new_id is not None and rejected.reason == "REJECTED err 803"
    (stored,) = await store.find("acme", rejected.new_id)
    assert stored.state is State.REJECTED and stored.charged_micro == 0
    assert await store.balance("acme") == 1_000_000
    with pytest.raises(ValueError, match="no account"):
        await resend_unpaid(store, CONFIG, "nobody", T0, NOW, NOW)


async def test_resend_reads_the_recipient_rules_in_the_accepting_transaction(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An opt-out that lands after the resend read its originals but before the store accepts them still holds:
    the rules are read in the store's transaction, not before it (the race `SqliteStore.accept` avoids)."""
    paid, unpaid = submission(new_message(price=0), new_message(price=100_000, destination="447911000009"))
    assert await store.accept([paid, unpaid]) == (True, False)
    await store.topup("acme", 1_000_000, NOW)
    accept = store.accept

    async def opt_out_first(messages: Sequence[NewMessage]) -> tuple[bool, ...]:
        await trio.to_thread.run_sync(store.policy_facts().suppress, "acme", "447911000009")
        return await accept(messages)

    monkeypatch.setattr(store, "accept", opt_out_first)
    (outcome,) = await resend_unpaid(store, CONFIG, "acme", T0, NOW, NOW)
    assert outcome.new_id is not None and outcome.reason == "REJECTED err 803"
    (stored,) = await store.find("acme", outcome.new_id)
    assert stored.state is State.REJECTED and stored.charged_micro == 0
    assert await store.balance("acme") == 1_000_000


def test_smsgw_resend_prints_old_and_new_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "gw.db"
    paid, unpaid = submission(new_message(price=0), new_message(price=100_000))

    async def prepare() -> None:
        async with open_store(db, StoreConfig(synchronous="NORMAL")) as store:
            assert await store.accept([paid, unpaid]) == (True, False)

    trio.run(prepare)
    config = tmp_path / "smsgw.toml"
    config.write_text(
        f'[[accounts]]\nsystem_id = "acme"\npassword_hash = "{hash_password("pw")}"\n\n'
        '[[routes]]\nname = "uk"\nprefixes = ["44"]\nprice_per_segment = 0.1\n\n'
        f'[store]\npath = "{db}"\n',
        encoding="utf-8",
    )
    resend = ["resend", "--account", "acme", "--from", "2026-01-01", "--to", "2026-01-01", "--error", "800"]
    assert main([*resend, "--config", str(config)]) == 1  # still no balance: said so, exit 1
    out = capsys.readouterr()
    assert out.out == f"{unpaid.message_id} -> - (not resent: insufficient balance (still unpaid))\n"
    assert "resent 0 of 1" in out.err
    assert main(["account", "topup", "acme", "1", "--db", str(db)]) == 0
    capsys.readouterr()
    assert main([*resend, "--config", str(config), "--db", str(db)]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    old, arrow, new = line.split()
    assert (old, arrow) == (unpaid.message_id, "->") and len(new) == 20 and new != old
    assert main([*resend, "--config", str(config)]) == 0
    assert capsys.readouterr().out == ""
    with pytest.raises(SystemExit):  # argparse: only 800 can be resent
        main([*resend, "--error", "801", "--config", str(config)])
    assert main([*resend[:6], "2025-12-31", *resend[7:], "--config", str(config)]) == 2  # --to before --from


async def test_a_running_gateway_sends_what_another_process_resent(tmp_path: Path, db_clock: MockClock) -> None:
    config = replace(CONFIG, store=StoreConfig(synchronous="NORMAL"))
    sender = FakeSender(decide=lambda sms: SendFailed(temporary=True, reason="unset"))
    sender.decide = sender.ok
    clock = WallClock(START)
    async with open_store(tmp_path / "gw.db", config.store) as gateway_store, open_store(
        tmp_path / "gw.db", config.store
    ) as cli_store:
        paid, unpaid = submission(new_message(price=0), new_message(price=100_000))
        assert await cli_store.accept([paid, unpaid]) == (True, False)
        async with trio.open_nursery() as nursery:
            await nursery.start(Scheduler(gateway_store, config, clock).run, sender)
            await cli_store.topup("acme", 100_000, clock.now_ms())
            (outcome,) = await resend_unpaid(cli_store, config, "acme", T0, T0 + 1, clock.now_ms())
            with trio.fail_after(60):  # found by the dispatcher's poll: no wake crosses processes
                await sender.wait_sent(1)
            assert sender.sent[0][1].destination == unpaid.destination.addr
            assert (await gateway_store.find("acme", outcome.new_id or ""))[0].state is not State.REJECTED
            nursery.cancel_scope.cancel()
