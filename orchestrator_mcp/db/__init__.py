"""Our own SQL tables (`tables`) and their Alembic migrations (`migrate.upgrade`)."""
