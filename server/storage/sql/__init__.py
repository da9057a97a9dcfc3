"""The store's roles written once in SQL that SQLite and PostgreSQL both run."""
