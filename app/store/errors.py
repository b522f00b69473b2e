"""The store's exceptions: one tree, each carrying the message its client reads.

::

    StoreError
    ├── NotFound                  404 not_found
    │   ├── NamespaceNotFound
    │   ├── WorkerNotFound
    │   │   └── TargetNotFound    404 worker_not_found (dispatch: the namespace or the worker)
    │   ├── VersionNotFound
    │   ├── SecretNotFound
    │   ├── KeyNotFound
    │   └── HostnameNotFound
    ├── Conflict                  409 conflict
    │   ├── NamespaceExists
    │   ├── NamespaceHasWorkers
    │   └── HostnameTaken
    └── QuotaExceeded             413 storage_quota_exceeded

``app/errors.py`` maps the branches to HTTP once (``install``); ``code`` is the error
code of the JSON body and ``field``, when set, the request field the details name.
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "HostnameNotFound",
    "HostnameTaken",
    "KeyNotFound",
    "NamespaceExists",
    "NamespaceHasWorkers",
    "NamespaceNotFound",
    "NotFound",
    "QuotaExceeded",
    "SecretNotFound",
    "StoreError",
    "TargetNotFound",
    "VersionNotFound",
    "WorkerNotFound",
]


class StoreError(Exception):
    """A request the store refuses; ``message`` says what to do about it."""

    code = "store_error"
    field: str | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(StoreError):
    code = "not_found"


class Conflict(StoreError):
    code = "conflict"


class NamespaceNotFound(NotFound):
    def __init__(self, namespace: str) -> None:
        super().__init__(f"namespace {namespace!r} was not found")
        self.namespace = namespace


class WorkerNotFound(NotFound):
    def __init__(self, namespace: str, name: str) -> None:
        super().__init__(f"worker {name!r} was not found in namespace {namespace!r}")
        self.namespace = namespace
        self.name = name


class TargetNotFound(WorkerNotFound):
    """No such worker to dispatch to; whether its namespace exists is not said."""

    code = "worker_not_found"


class VersionNotFound(NotFound):
    def __init__(self, namespace: str, name: str, version_id: str) -> None:
        super().__init__(
            f"version {version_id!r} of worker {name!r} was not found in namespace {namespace!r}"
        )
        self.version_id = version_id


class SecretNotFound(NotFound):
    def __init__(self, namespace: str, name: str, secret: str) -> None:
        super().__init__(f"worker {name!r} in namespace {namespace!r} has no secret {secret!r}")
        self.secret = secret


class KeyNotFound(NotFound):
    def __init__(self, namespace: str, key_id: str) -> None:
        super().__init__(f"key {key_id!r} was not found in namespace {namespace!r}")
        self.key_id = key_id


class HostnameNotFound(NotFound):
    def __init__(self, namespace: str, hostname: str) -> None:
        super().__init__(f"hostname {hostname!r} is not routed by namespace {namespace!r}")
        self.hostname = hostname


class NamespaceExists(Conflict):
    def __init__(self, namespace: str) -> None:
        super().__init__(f"namespace {namespace!r} already exists")
        self.namespace = namespace


class NamespaceHasWorkers(Conflict):
    """The namespace still has workers (``count``) and the delete was not forced."""

    def __init__(self, namespace: str, count: int) -> None:
        super().__init__(
            f"namespace {namespace!r} still has {count} worker(s); delete them first, or send "
            f"DELETE /v1/namespaces/{namespace}?force=true to delete it with its workers"
        )
        self.count = count


class HostnameTaken(Conflict):
    def __init__(self, hostname: str) -> None:
        super().__init__(
            f"hostname {hostname!r} is routed by another namespace; the admin key can move "
            "it here with ?reassign=true"
        )
        self.hostname = hostname


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


class QuotaExceeded(StoreError):
    """The upload would take the namespace's artifacts over its storage quota."""

    code = "storage_quota_exceeded"
    field = "modules"

    def __init__(self, namespace: str, quota_bytes: int, used_bytes: int, adding_bytes: int):
        super().__init__(
            f"namespace {namespace!r} stores {_mib(used_bytes)} ({used_bytes} bytes) of its "
            f"{_mib(quota_bytes)} storage quota and this upload adds {adding_bytes} bytes: "
            "delete workers you no longer need, or ask the admin to raise the namespace's "
            "storage_mb (default: SANDLOT_NAMESPACE_STORAGE_MB)"
        )
        self.namespace = namespace
        self.quota_bytes = quota_bytes
        self.used_bytes = used_bytes
        self.adding_bytes = adding_bytes
