"""User workers in the store: immutable versions, the deployed one, tags.

Storage is bounded per namespace: each upload keeps a worker's newest versions (the
namespace's ``version_retention``, else the server's) and refuses to go over the
namespace's storage quota (QuotaExceeded). Files no version refers to any more are
deleted (app/store/blobs.py). Every writer of a namespace's workers locks the
namespace's row first, so concurrent uploads see each other's usage.
"""

from __future__ import annotations

import secrets as _secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.orm import Session

from app.store import blobs
from app.store.artifacts import ArtifactStore
from app.store.db import Store
from app.store.errors import (
    NamespaceNotFound,
    QuotaExceeded,
    SecretNotFound,
    VersionNotFound,
    WorkerNotFound,
)
from app.store.models import NamespaceRow, WorkerRow, WorkerVersionRow

__all__ = [
    "QuotaExceeded",
    "Saved",
    "SecretNotFound",
    "StorageDefaults",
    "Target",
    "Version",
    "VersionHistory",
    "VersionNotFound",
    "Worker",
    "WorkerNotFound",
    "WorkerSpec",
    "count",
    "delete_by_tags",
    "delete_secret",
    "deploy",
    "get",
    "history",
    "page",
    "remove",
    "save_version",
    "set_secret",
    "set_tags",
    "target",
    "versions",
]


@dataclass(frozen=True, slots=True)
class StorageDefaults:
    """The server's defaults; a namespace's own values (set by the admin) win."""

    version_retention: int
    quota_bytes: int


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What an upload sets besides the code (the code is the version's artifact).

    ``vars`` and ``secrets`` are the worker's bindings, not a version's: None keeps
    what the worker has (nothing for a new worker); a dict replaces that set whole,
    so ``{}`` clears it.
    """

    runtime: str
    tags: list[str]
    limits: dict[str, Any]
    allowed_hosts: list[str]
    vars: dict[str, str] | None = None
    secrets: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Version:
    id: str
    number: int
    sha256: str
    main_module: str
    requirements: list[str]
    size: int
    build_ms: float
    warnings: list[str]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Worker:
    namespace: str
    name: str
    runtime: str
    tags: list[str]
    limits: dict[str, Any]
    allowed_hosts: list[str]
    vars: dict[str, str]
    secret_names: list[str]
    current: Version | None
    created_at: datetime
    updated_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=moment.tzinfo or UTC)


def _version(row: WorkerVersionRow) -> Version:
    return Version(
        id=row.id,
        number=row.number,
        sha256=row.sha256,
        main_module=row.main_module,
        requirements=list(row.requirements),
        size=row.size,
        build_ms=row.build_ms,
        warnings=list(row.warnings),
        created_at=_utc(row.created_at),
    )


def _worker(session: Session, namespace: str, row: WorkerRow) -> Worker:
    version = None
    if row.current_version is not None:
        version = session.get(WorkerVersionRow, row.current_version)
    return _worker_from(namespace, row, version)


def _worker_from(namespace: str, row: WorkerRow, version: WorkerVersionRow | None) -> Worker:
    current = _version(version) if version is not None else None
    return Worker(
        namespace=namespace,
        name=row.name,
        runtime=row.runtime,
        tags=list(row.tags),
        limits=dict(row.limits),
        allowed_hosts=list(row.allowed_hosts),
        vars=dict(row.vars),
        secret_names=sorted(row.secrets),
        current=current,
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
    )


def _lock_namespace(session: Session, namespace: str) -> NamespaceRow:
    """The namespace's row, locked until the transaction ends. Raises NamespaceNotFound.

    A write first: a row lock on PostgreSQL, the write lock on SQLite.
    """
    session.execute(
        update(NamespaceRow)
        .where(NamespaceRow.name == namespace)
        .values(mode=NamespaceRow.mode)
        .execution_options(synchronize_session=False)
    )
    row = session.scalar(select(NamespaceRow).where(NamespaceRow.name == namespace))
    if row is None:
        raise NamespaceNotFound(namespace)
    return row


def _shas_of(
    session: Session, *, namespace_id: int, worker_ids: list[int] | None = None
) -> set[str]:
    query = (
        select(WorkerVersionRow.sha256)
        .join(WorkerRow, WorkerRow.id == WorkerVersionRow.worker_id)
        .where(WorkerRow.namespace_id == namespace_id)
    )
    if worker_ids is not None:
        query = query.where(WorkerRow.id.in_(worker_ids))
    return set(session.scalars(query.distinct()))


def _namespace_id(session: Session, namespace: str) -> int:
    found = session.scalar(select(NamespaceRow.id).where(NamespaceRow.name == namespace))
    if found is None:
        raise NamespaceNotFound(namespace)
    return int(found)


def _row(session: Session, namespace: str, name: str) -> WorkerRow:
    namespace_id = _namespace_id(session, namespace)
    row = session.scalar(
        select(WorkerRow).where(WorkerRow.namespace_id == namespace_id, WorkerRow.name == name)
    )
    if row is None:
        raise WorkerNotFound(namespace, name)
    return row


@dataclass(frozen=True, slots=True)
class Saved:
    worker: Worker
    created: bool  # the worker did not exist before
    reused: bool  # the namespace already stored these exact bytes
    pruned: int  # older versions removed by retention


def save_version(
    store: Store,
    namespace: str,
    name: str,
    spec: WorkerSpec,
    *,
    artifacts: ArtifactStore,
    bundle: bytes,
    main_module: str,
    requirements: list[str],
    build_ms: float,
    warnings: list[str],
    defaults: StorageDefaults,
) -> Saved:
    """Create or replace the worker, add a version with ``bundle`` as its artifact and
    deploy it; drop the worker's versions beyond retention and their unused files.

    Raises NamespaceNotFound, QuotaExceeded (nothing changed then).
    """
    now = datetime.now(UTC)
    sha256 = ArtifactStore.sha256_of(bundle)
    held = False
    try:
        with store.session() as session:
            space = _lock_namespace(session, namespace)
            row = session.scalar(
                select(WorkerRow).where(WorkerRow.namespace_id == space.id, WorkerRow.name == name)
            )
            created = row is None
            reused = blobs.refers(session, space.id, sha256)
            used = blobs.usage(session, space.id)
            pruned: set[str] = set()
            dropped = 0
            if row is not None:
                # The new version is the deployed one: keep it and the newest others.
                keep = (space.version_retention or defaults.version_retention) - 1
                doomed = list(
                    session.scalars(
                        select(WorkerVersionRow)
                        .where(WorkerVersionRow.worker_id == row.id)
                        .order_by(WorkerVersionRow.number.desc())
                        .offset(keep)
                    )
                )
                pruned = {version.sha256 for version in doomed}
                dropped = len(doomed)
                if doomed:
                    session.execute(
                        delete(WorkerVersionRow).where(
                            WorkerVersionRow.id.in_([version.id for version in doomed])
                        )
                    )
            quota = space.storage_mb * 1024 * 1024 if space.storage_mb else defaults.quota_bytes
            adding = 0 if blobs.refers(session, space.id, sha256) else len(bundle)
            if blobs.usage(session, space.id) + adding > quota:
                raise QuotaExceeded(namespace, quota, used, len(bundle) if not reused else 0)
            held = True
            blobs.hold(session, artifacts, bundle)
            if row is None:
                row = WorkerRow(namespace_id=space.id, name=name, created_at=now)
                session.add(row)
            row.runtime, row.tags, row.limits = spec.runtime, spec.tags, spec.limits
            row.allowed_hosts = spec.allowed_hosts
            if spec.vars is not None or created:
                row.vars = spec.vars or {}
            if spec.secrets is not None or created:
                row.secrets = store.secret_box().seal(spec.secrets) if spec.secrets else {}
            elif row.secrets:
                # Kept secrets move to the newest key, as if they had been sent again.
                row.secrets = store.secret_box().reseal(row.secrets)
            row.updated_at = now
            session.flush()
            number = (
                session.scalar(
                    select(func.max(WorkerVersionRow.number)).where(
                        WorkerVersionRow.worker_id == row.id
                    )
                )
                or 0
            ) + 1
            version = WorkerVersionRow(
                id="ver_" + _secrets.token_hex(8),
                worker_id=row.id,
                number=number,
                sha256=sha256,
                main_module=main_module,
                requirements=requirements,
                size=len(bundle),
                build_ms=build_ms,
                warnings=warnings,
                created_at=now,
            )
            session.add(version)
            session.flush()
            row.current_version = version.id
            session.flush()
            worker = _worker(session, namespace, row)
    except BaseException:
        if held:
            # Written, but no version refers to it: don't leave the file behind.
            blobs.release(store, artifacts, [sha256])
        raise
    blobs.release(store, artifacts, pruned - {sha256})
    return Saved(worker=worker, created=created, reused=reused, pruned=dropped)


def get(store: Store, namespace: str, name: str) -> Worker:
    """Raises NamespaceNotFound, WorkerNotFound."""
    with store.session() as session:
        return _worker(session, namespace, _row(session, namespace, name))


def _matches(tags: list[str], wanted: dict[str, bool]) -> bool:
    return all((tag in tags) == present for tag, present in wanted.items())


def page(
    store: Store, namespace: str, *, tags: dict[str, bool], limit: int, after: str | None
) -> tuple[list[Worker], str | None]:
    """Workers by name matching the tag filter (tag → must have / must not have)."""
    found: list[Worker] = []
    with store.session() as session:
        namespace_id = _namespace_id(session, namespace)
        query = (
            select(WorkerRow).where(WorkerRow.namespace_id == namespace_id).order_by(WorkerRow.name)
        )
        if after is not None:
            query = query.where(WorkerRow.name > after)
        for row in session.scalars(query):
            if _matches(row.tags, tags):
                found.append(_worker(session, namespace, row))
                if len(found) > limit:
                    break
    items = found[:limit]
    return items, (items[-1].name if len(found) > limit else None)


def count(store: Store, namespace: str) -> int:
    with store.session() as session:
        namespace_id = _namespace_id(session, namespace)
        return int(
            session.scalar(
                select(func.count())
                .select_from(WorkerRow)
                .where(WorkerRow.namespace_id == namespace_id)
            )
            or 0
        )


def remove(store: Store, namespace: str, name: str, *, artifacts: ArtifactStore) -> None:
    """Delete the worker, its versions, and the files no other version refers to."""
    with store.session() as session:
        space = _lock_namespace(session, namespace)
        row = session.scalar(
            select(WorkerRow).where(WorkerRow.namespace_id == space.id, WorkerRow.name == name)
        )
        if row is None:
            raise WorkerNotFound(namespace, name)
        shas = _shas_of(session, namespace_id=space.id, worker_ids=[row.id])
        session.delete(row)
    blobs.release(store, artifacts, shas)


def delete_by_tags(
    store: Store, namespace: str, tags: dict[str, bool], *, artifacts: ArtifactStore
) -> list[str]:
    """Delete every worker matching the filter (and its unused files); return their names."""
    with store.session() as session:
        space = _lock_namespace(session, namespace)
        rows = [
            row
            for row in session.scalars(select(WorkerRow).where(WorkerRow.namespace_id == space.id))
            if _matches(row.tags, tags)
        ]
        shas = _shas_of(session, namespace_id=space.id, worker_ids=[row.id for row in rows])
        for row in rows:
            session.delete(row)
        names = sorted(row.name for row in rows)
    blobs.release(store, artifacts, shas)
    return names


@dataclass(frozen=True, slots=True)
class Target:
    """What dispatch needs, read in one transaction."""

    namespace_mode: str
    namespace_limits: dict[str, Any]
    namespace_allowed_hosts: list[str]
    dispatch_public: bool
    worker: Worker
    bindings: dict[str, str]
    namespace_private_egress: bool = False
    namespace_quotas: dict[str, Any] = field(default_factory=dict)


_NAMESPACE_COLUMNS = (
    "mode",
    "limits",
    "allowed_hosts",
    "dispatch_public",
    "private_egress",
    "quotas",
)
_WORKER_COLUMNS = (
    "name",
    "runtime",
    "tags",
    "limits",
    "allowed_hosts",
    "vars",
    "secrets",
    "created_at",
    "updated_at",
)
_VERSION_COLUMNS = (
    "id",
    "number",
    "sha256",
    "main_module",
    "requirements",
    "size",
    "build_ms",
    "warnings",
    "created_at",
)


def _target_query(namespace: str, name: str) -> Select[Any]:
    spaces, rows = NamespaceRow.__table__, WorkerRow.__table__
    versions_ = WorkerVersionRow.__table__
    columns = [
        *(spaces.c[column].label(f"n_{column}") for column in _NAMESPACE_COLUMNS),
        rows.c.id.label("w_id"),
        *(rows.c[column].label(f"w_{column}") for column in _WORKER_COLUMNS),
        *(versions_.c[column].label(f"v_{column}") for column in _VERSION_COLUMNS),
    ]
    return (
        select(*columns)
        .select_from(spaces)
        .outerjoin(rows, (rows.c.namespace_id == spaces.c.id) & (rows.c.name == name))
        .outerjoin(versions_, versions_.c.id == rows.c.current_version)
        .where(spaces.c.name == namespace)
    )


def target(store: Store, namespace: str, name: str) -> Target:
    """The namespace's defaults, the worker and its bindings. Raises *NotFound.

    One Core query on a plain connection (dispatch runs it on every request):
    loading ORM objects in a session cost about a millisecond more.
    """
    with store.engine.connect() as connection:
        found = connection.execute(_target_query(namespace, name)).mappings().first()
    if found is None:
        raise NamespaceNotFound(namespace)
    if found["w_id"] is None:
        raise WorkerNotFound(namespace, name)
    current = None
    if found["v_id"] is not None:
        current = Version(
            id=found["v_id"],
            number=found["v_number"],
            sha256=found["v_sha256"],
            main_module=found["v_main_module"],
            requirements=list(found["v_requirements"]),
            size=found["v_size"],
            build_ms=found["v_build_ms"],
            warnings=list(found["v_warnings"]),
            created_at=_utc(found["v_created_at"]),
        )
    worker = Worker(
        namespace=namespace,
        name=found["w_name"],
        runtime=found["w_runtime"],
        tags=list(found["w_tags"]),
        limits=dict(found["w_limits"]),
        allowed_hosts=list(found["w_allowed_hosts"]),
        vars=dict(found["w_vars"]),
        secret_names=sorted(found["w_secrets"]),
        current=current,
        created_at=_utc(found["w_created_at"]),
        updated_at=_utc(found["w_updated_at"]),
    )
    return Target(
        namespace_mode=found["n_mode"],
        namespace_limits=dict(found["n_limits"]),
        namespace_allowed_hosts=list(found["n_allowed_hosts"]),
        dispatch_public=bool(found["n_dispatch_public"]),
        worker=worker,
        bindings={**found["w_vars"], **_opened(store, found["w_secrets"])},
        namespace_private_egress=bool(found["n_private_egress"]),
        namespace_quotas=dict(found["n_quotas"] or {}),
    )


def _opened(store: Store, sealed: dict[str, str]) -> dict[str, str]:
    return store.secret_box().open(sealed) if sealed else {}


def versions(store: Store, namespace: str, name: str) -> list[Version]:
    """The worker's versions, oldest first."""
    return history(store, namespace, name).versions


def _version_row(
    session: Session, namespace: str, worker: WorkerRow, version: str
) -> WorkerVersionRow:
    """The worker's version by id (``ver_…``) or by number (``3``). Raises VersionNotFound."""
    if version.isdigit():
        found = session.scalar(
            select(WorkerVersionRow).where(
                WorkerVersionRow.worker_id == worker.id, WorkerVersionRow.number == int(version)
            )
        )
    else:
        found = session.get(WorkerVersionRow, version)
    if found is None or found.worker_id != worker.id:
        raise VersionNotFound(namespace, worker.name, version)
    return found


@dataclass(frozen=True, slots=True)
class VersionHistory:
    versions: list[Version]  # oldest first
    deployed: str | None  # the id of the version that serves


def history(store: Store, namespace: str, name: str) -> VersionHistory:
    """The worker's versions and which one is deployed, read together."""
    with store.session() as session:
        row = _row(session, namespace, name)
        query = (
            select(WorkerVersionRow)
            .where(WorkerVersionRow.worker_id == row.id)
            .order_by(WorkerVersionRow.number)
        )
        found = [_version(version) for version in session.scalars(query)]
        return VersionHistory(versions=found, deployed=row.current_version)


def deploy(store: Store, namespace: str, name: str, version: str) -> Worker:
    """Make an earlier version the one that serves (rollback), by id or by number.

    Bindings (vars, secrets) belong to the worker and stay as they are.
    Raises VersionNotFound.
    """
    with store.session() as session:
        row = _row(session, namespace, name)
        row.current_version = _version_row(session, namespace, row, version).id
        row.updated_at = datetime.now(UTC)
        session.flush()
        return _worker(session, namespace, row)


def _locked_row(session: Session, namespace: str, name: str) -> WorkerRow:
    """The worker's row, its namespace locked (as uploads lock it) until the transaction ends."""
    space = _lock_namespace(session, namespace)
    row = session.scalar(
        select(WorkerRow).where(WorkerRow.namespace_id == space.id, WorkerRow.name == name)
    )
    if row is None:
        raise WorkerNotFound(namespace, name)
    return row


def set_secret(store: Store, namespace: str, name: str, secret: str, value: str) -> bool:
    """Set one secret of the worker (sealed at rest), leaving the others; True if it is new.

    No new version: the next request sees it. Raises NamespaceNotFound, WorkerNotFound.
    """
    with store.session() as session:
        row = _locked_row(session, namespace, name)
        created = secret not in row.secrets
        # A new dict: the JSON column notices assignment, not changes in place.
        box = store.secret_box()
        row.secrets = {**box.reseal(row.secrets), **box.seal({secret: value})}
        row.updated_at = datetime.now(UTC)
    return created


def delete_secret(store: Store, namespace: str, name: str, secret: str) -> None:
    """Remove one secret of the worker. Raises *NotFound, SecretNotFound."""
    with store.session() as session:
        row = _locked_row(session, namespace, name)
        if secret not in row.secrets:
            raise SecretNotFound(namespace, name, secret)
        row.secrets = {key: value for key, value in row.secrets.items() if key != secret}
        row.updated_at = datetime.now(UTC)


def set_tags(store: Store, namespace: str, name: str, tags: list[str]) -> Worker:
    with store.session() as session:
        row = _row(session, namespace, name)
        row.tags = tags
        row.updated_at = datetime.now(UTC)
        session.flush()
        return _worker(session, namespace, row)
