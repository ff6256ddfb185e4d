"""Where runs live: the embedded SQLite files of a data dir, or one shared PostgreSQL database
(`ORCH_DATABASE_URL`) that several replicas use for DBOS's system tables and ours.

Our tables are migrated to this orchestrator's schema when the run store opens the database
(`db.migrate.upgrade`, Alembic); a database migrated by a newer orchestrator is refused with
a DatabaseError rather than misread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator_mcp.errors import Unavailable


class DatabaseError(Unavailable):
    """The database cannot be used: says why and how to fix it (never with the password)."""


@dataclass(frozen=True)
class Database:
    """The URLs one orchestrator process uses."""

    store_url: str  # our tables (runs, steps, tool calls, alerts, audit, executors)
    dbos_url: str  # DBOS's system database
    shared: bool  # PostgreSQL: several processes execute runs side by side

    @classmethod
    def for_data_dir(cls, data_dir: Path, url: str | None) -> Database:
        if not url:
            return cls(f"sqlite:///{data_dir / 'runs.sqlite'}",
                       f"sqlite:///{data_dir / 'dbos.sqlite'}", shared=False)
        scheme = url.split("://", 1)[0]
        if scheme not in ("postgresql", "postgres", "postgresql+psycopg"):
            raise DatabaseError(f"ORCH_DATABASE_URL must start with postgresql:// (got "
                                f"{scheme}://); leave it unset for the embedded SQLite files")
        rest = url.split("://", 1)[1]
        return cls(f"postgresql+psycopg://{rest}", f"postgresql://{rest}", shared=True)

    @property
    def shown(self) -> str:
        """The store URL with any password hidden, for messages and logs."""
        return hide_password(self.store_url)

    def scrub(self, text: str) -> str:
        """`text` without the database password (driver errors may quote the URL)."""
        import sqlalchemy as sa

        password = sa.make_url(self.store_url).password if self.shared else None
        return text.replace(str(password), "***") if password else text


def hide_password(url: str) -> str:
    import sqlalchemy as sa

    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown without its credentials
        return url.split("@")[-1]


def explain_connect_error(database: Database, exc: Exception) -> DatabaseError:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return DatabaseError(
        f"cannot use the database {database.shown}: {reason} — fix: check that PostgreSQL "
        "is running and reachable, and the user, password and database name in "
        "ORCH_DATABASE_URL")

