"""Make the collection importable as ansible_collections.free4allweb.devops from a checkout."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
COLLECTIONS = ROOT / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

# Shared fixtures: a throwaway PostgreSQL server (pg_server, database_url).
pytest_plugins = ["tests.support.postgres"]
