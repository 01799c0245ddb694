"""Durable store and scheduler: every message from acceptance until its final receipt is acknowledged.

Wiring (app.py): `async with store.open_store(config.store) as store`, `Scheduler(store, config, WallClock())` is
the SMPP server's `SmppBackend` and the modem pool's `ModemEventSink`; `await nursery.start(scheduler.run,
sender)` recovers interrupted hand-offs and runs the dispatcher, the retention purge and the MO callbacks.

Modules: `states` (transition table, derived message state), `ids` (message_id), `timing` (clock, schedule,
validity, backoff), `routing` (route lookup, prices), `content` (segments from a submission), `store` (the
Protocol and `open_store`), `billing` + `outcomes` + `outbox_codec` (the rules every engine applies),
`sqlite_store` + `sqlite/` + `writer` + `migrations` (SQLite with group commit), `render` (receipts and MO as
deliver_sm), `history` (CSV export), `policy` + `policy_store` (numbers, senders, content rules, do-not-call,
opt-out), `callback` (MO HTTP callbacks, pending in the store), `service` (the Scheduler: submit rules, MO
routing, dispatch).
"""
