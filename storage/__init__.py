"""Storage, the bottom layer: SQLModel tables, the async engine and sessions, roster import,
the outbox table's reads, the webhook inbox, Alembic migrations. Imports nothing above it."""
