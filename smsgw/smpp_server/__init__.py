"""SMPP 3.4 server: `session` (sans-IO `SmppSession`), `states` (bind-state table), `validation` (field checks),
`accounts` (who may bind, failed-bind guard), `throttle` (token bucket), `audit` (connection audit log),
`server` (`serve_smpp`, the Trio shell) and `backend` (the `SmppBackend` seam to the store)."""
