"""Detection: records in, signals out, state in the store; knows nothing of Slack."""

# Here rather than in store.py, so that reading the settings does not import SQLAlchemy: `sesguard scan`
# without --db never touches a database, and that import is half a second of every start.
DEFAULT_DATABASE_URL = "sqlite:///sesguard.db"
