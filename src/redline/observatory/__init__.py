"""The observatory: a multi-organisation service where members share signed attestations and
runtime guard summaries, get alerted when something crosses a line anywhere, report
incidents, and disclose vulnerabilities in a coordinated way.

The service is a FastAPI app over SQLAlchemy (SQLite by default, PostgreSQL in production)
with Alembic migrations shipped in this package; ``redline observatory serve`` runs it and
``redline observatory push`` feeds it.
"""

from redline.observatory.app import create_app
from redline.observatory.settings import Settings

__all__ = ["Settings", "create_app"]
