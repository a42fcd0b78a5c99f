"""Storage: SQLModel tables, the async engine and sessions, queries, migrations, the outbox."""
