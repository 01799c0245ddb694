"""The PostgreSQL schema: SQLite's migrations (`smsgw.scheduler.migrations.MIGRATIONS`), each translated by
`connection.translate`, so both engines have one history of versions. The version is a row of `schema_version`
(SQLite keeps it in `PRAGMA user_version`); nodes starting together migrate one after the other, under an
advisory lock held by each step's transaction.
"""

from __future__ import annotations

import logging
from typing import Final

from smsgw.scheduler.migrations import MIGRATIONS, SchemaTooNew
from smsgw.scheduler.policy_store import SCHEMA as POLICY_SCHEMA
from smsgw.scheduler.postgres.connection import PgConnection

log = logging.getLogger(__name__)

# Any constant both sides agree on: the key of the advisory lock that serialises migrations between nodes.
_MIGRATION_LOCK: Final = 0x736D7367  # "smsg"


def schema_version(connection: PgConnection) -> int:
    row = connection.execute(
        "SELECT version FROM schema_version" if _has_version_table(connection) else "SELECT 0 AS version"
    ).fetchone()
    return 0 if row is None else int(row["version"])


def _has_version_table(connection: PgConnection) -> bool:
    return bool(connection.execute("SELECT to_regclass('schema_version') IS NOT NULL AS found").fetchone()["found"])


def migrate(connection: PgConnection) -> int:
    """Bring the schema to the newest version, one transaction per step; the version. SchemaTooNew when the
    database was migrated by a newer smsgw: this node refuses to start rather than write what it does not know."""
    with connection:
        connection.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
        connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        if connection.execute("SELECT 1 FROM schema_version").fetchone() is None:
            connection.execute("INSERT INTO schema_version (version) VALUES (0)")
        for statement in POLICY_SCHEMA:
            connection.execute(statement)
    while True:
        with connection:
            connection.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
            version = schema_version(connection)
            if version > len(MIGRATIONS):
                raise SchemaTooNew(f"store schema version {version} is newer than this smsgw ({len(MIGRATIONS)})")
            if version == len(MIGRATIONS):
                return version
            connection.executescript(MIGRATIONS[version])
            connection.execute("UPDATE schema_version SET version = ?", (version + 1,))
        log.info("store migrated engine=postgresql version=%d", version + 1)
