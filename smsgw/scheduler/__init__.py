"""Durable store and scheduler: every message from acceptance until its final receipt is acknowledged.

Wiring (app.py): `async with store.open_store(config.store) as store`, `scheduler = Scheduler(store, config,
WallClock())` builds the rooms; `scheduler.smpp` is the SMPP server's `SmppBackend`, `scheduler.modem_events` the
modem pool's `ModemEventSink`; `await nursery.start(scheduler.run, sender)` recovers interrupted hand-offs and runs
the dispatcher, the retention purge, the MO callbacks and the outbox's acknowledgement writer.

Modules: `states` (transition table, derived message state), `ids` (message_id), `timing` (clock, schedule,
validity, backoff), `routing` (route lookup, prices), `content` (segments from a submission), `store` (the
Protocol and `open_store`), `billing` + `outcomes` + `outbox_codec` (the rules every engine applies),
`sqlite_store` + `sqlite/` + `writer` + `migrations` (SQLite with group commit), `render` (receipts and MO as
deliver_sm), `history` (CSV export), `policy` + `policy_store` (numbers, senders, content rules, do-not-call,
opt-out), `callback` (MO HTTP callbacks, pending in the store), `accept` (the one accept path, plain values in),
`smpp_intake` (SMPP requests to and from the accept path), `dispatch` (due segments to modems, status reports),
`mo` (MO routing, opt-outs, notices), `outbox` (receipts and MO offered to binds), `resend` (`smsgw resend`),
`service` (the rooms wired together).
"""
