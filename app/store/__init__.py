"""The control plane's storage: one data layer over SQLite (default) or PostgreSQL.

``Store`` owns the SQLAlchemy engine and sessions; ``migrate`` brings a database
to the current schema with Alembic (``migrations/``), so an upgrade keeps data.
Repository functions live beside it (``namespaces.py``).
"""

from app.store import blobs, errors, hostnames, keys, namespaces, replicas, usage, workers
from app.store.artifact_cache import ArtifactCache
from app.store.artifacts import ArtifactMissing, ArtifactStore
from app.store.cache import ReadCache
from app.store.db import Store, migrate
from app.store.errors import Conflict, NotFound, StoreError
from app.store.models import ApiKeyRow, NamespaceRow
from app.store.secretbox import SecretBox, SecretsUnreadable

__all__ = [
    "ApiKeyRow",
    "ArtifactCache",
    "ArtifactMissing",
    "ArtifactStore",
    "Conflict",
    "NamespaceRow",
    "NotFound",
    "ReadCache",
    "SecretBox",
    "SecretsUnreadable",
    "Store",
    "StoreError",
    "blobs",
    "errors",
    "hostnames",
    "keys",
    "migrate",
    "namespaces",
    "replicas",
    "usage",
    "workers",
]
