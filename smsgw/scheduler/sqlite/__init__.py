"""The SQLite engine's jobs, one module each, composed into `smsgw.scheduler.sqlite_store.SqliteStore`:
`base` (connections, writer, wake-ups, the shared transaction steps), `accepting`, `dispatch` (claims, outcomes,
status reports, recovery), `messages` (find, cancel, replace), `ledger`, `outbox` (MO, outbox, notices),
`callbacks`, `retention` (purge, history export)."""
