"""Request dependencies: settings and runners come from app state (made in the lifespan).

They are ``async def``: FastAPI runs a plain ``def`` dependency in its thread pool,
and that hop cost more than the rest of a small request's routing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, FastAPI, Request

from app.bundles import BundleCache
from app.config import Settings
from app.draining import Drain
from app.metrics import Metrics
from app.quotas import QuotaGate
from app.store import ArtifactStore, ReadCache, Store, workers
from app.tail import TailHub
from app.tracing import Tracing
from app.usage import UsageMeter
from sandbox import Runner

if TYPE_CHECKING:  # app.sessions imports the routes, which import this module
    from app.session_proxy import SessionProxy
    from app.sessions import SessionManager


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_runners(request: Request) -> dict[str, Runner]:
    runners: dict[str, Runner] = request.app.state.runners
    return runners


SettingsDep = Annotated[Settings, Depends(get_settings)]
RunnersDep = Annotated[dict[str, Runner], Depends(get_runners)]


async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_artifacts(request: Request) -> ArtifactStore:
    artifacts: ArtifactStore = request.app.state.artifacts
    return artifacts


StoreDep = Annotated[Store, Depends(get_store)]
ArtifactsDep = Annotated[ArtifactStore, Depends(get_artifacts)]


@dataclass(frozen=True, slots=True)
class Services:
    """What a request's work needs from app state, for code shared by routes and tools."""

    settings: Settings
    runners: dict[str, Runner]
    store: Store
    artifacts: ArtifactStore
    bundles: BundleCache
    # Dispatch's worker lookups: (namespace, worker) → target.
    targets: ReadCache[tuple[str, str], workers.Target]
    # Quotas and rate limits (app/quotas.py).
    quotas: QuotaGate
    # The service's sessions (app/sessions/); None only before the lifespan made them.
    sessions: SessionManager | None = None
    # Calls for sessions other replicas hold (app/session_proxy.py); None: one replica.
    session_proxy: SessionProxy | None = None
    metrics: Metrics = field(default_factory=lambda: Metrics(max_namespaces=0))
    drain: Drain = field(default_factory=Drain)
    # Live tails of workers (app/tail.py) and usage per namespace and day (app/usage.py).
    tails: TailHub = field(default_factory=TailHub)
    usage: UsageMeter = field(default_factory=UsageMeter)
    # OpenTelemetry spans (app/tracing.py); None: SANDLOT_TRACING=off.
    tracing: Tracing | None = None


def services_of(app: FastAPI) -> Services:
    """The services of an app whose lifespan has started."""
    state = app.state
    return Services(
        settings=state.settings,
        runners=state.runners,
        store=state.store,
        artifacts=state.artifacts,
        bundles=state.bundles,
        targets=state.targets,
        quotas=state.quotas,
        sessions=getattr(state, "sessions", None),
        session_proxy=getattr(state, "session_proxy", None),
        metrics=state.metrics,
        drain=state.drain,
        tails=state.tails,
        usage=state.usage,
        tracing=getattr(state, "tracing", None),
    )


async def get_services(request: Request) -> Services:
    return services_of(request.app)


ServicesDep = Annotated[Services, Depends(get_services)]
