"""Where the tests run: the admin key, the PostgreSQL server, the shared data folder and whether this is CI.

With ``CI=true`` a missing PostgreSQL server or shared file fails a test instead of skipping it.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import create_engine, text

ADMIN_KEY = "test-admin-key"
POSTGRES_ADMIN_URL = os.environ.get("FEEDBACKLOOP_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# Data that may not be redistributed sits in the shared folder next to the checkout, not in the repository.
SHARED = Path(__file__).resolve().parents[2].parent / "shared"
IN_CI = os.environ.get("CI", "").lower() == "true"


def postgres_available() -> bool:
    try:
        with create_engine(POSTGRES_ADMIN_URL).connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
