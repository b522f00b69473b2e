"""A session as the service keeps it: owner, instance, limits, expiry, usage."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from app.quotas import Subject
from app.session_schemas import SessionOut, SessionState, SessionUsage
from sandbox import AllowEntry, PoolSession, WorkerPool, Workspace

__all__ = ["Session"]


@dataclass(eq=False)
class Session:
    """One session, as the service keeps it (times: ``time.time()`` and monotonic)."""

    id: str
    owner: str
    namespace: str | None
    runtime: str
    runner: WorkerPool
    instance: PoolSession
    workspace: Workspace
    limits: dict[str, int]
    allowed_hosts: tuple[AllowEntry, ...]
    memory_mb: int
    idle_timeout_s: int
    max_lifetime_s: int
    # What it and its turns count against (app/quotas.py): its owner's namespace and key.
    quota_subjects: tuple[Subject, ...] = ()
    created_at: float = field(default_factory=time.time)
    created: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)
    busy: bool = False
    ended: str | None = None
    ended_at: float = 0.0
    # Its quota lease and its row among the replicas' sessions are given back (once).
    released: bool = False
    turns: int = 0
    cpu_ms: float = 0.0
    wall_ms: float = 0.0
    subrequests: int = 0
    output_bytes: int = 0
    files_bytes: int = 0

    def idle_s(self, now: float) -> float:
        return now - self.last_used

    def expires_in(self, now: float) -> float:
        return min(
            self.idle_timeout_s - (now - self.last_used),
            self.max_lifetime_s - (now - self.created),
        )

    def state(self) -> SessionState:
        return SessionState(
            id=self.id, state="open" if self.ended is None else "ended", ended_reason=self.ended
        )

    def describe(self) -> SessionOut:
        now = time.monotonic()
        wall_now = time.time()
        expires = None if self.ended else _iso(wall_now + max(0.0, self.expires_in(now)))
        return SessionOut(
            id=self.id,
            runtime=self.runtime,
            state="open" if self.ended is None else "ended",
            ended_reason=self.ended,
            busy=self.busy,
            created_at=_iso(self.created_at),
            last_used_at=_iso(wall_now - (now - self.last_used)),
            expires_at=expires,
            idle_timeout_s=self.idle_timeout_s,
            max_lifetime_s=self.max_lifetime_s,
            memory_mb=self.memory_mb,
            memory_bytes=self.instance.memory_bytes,
            limits=dict(self.limits),
            allowed_hosts=[str(entry) for entry in self.allowed_hosts],
            usage=SessionUsage(
                turns=self.turns,
                cpu_ms=round(self.cpu_ms, 3),
                wall_ms=round(self.wall_ms, 3),
                subrequests=self.subrequests,
                output_bytes=self.output_bytes,
            ),
            files_bytes=self.files_bytes,
            disk_quota_bytes=self.workspace.quota_bytes,
        )


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")
