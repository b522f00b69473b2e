"""Request dependencies: settings and runners come from app state (made in the lifespan)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.config import Settings
from app.store import ArtifactStore, Store
from sandbox import Runner


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_runners(request: Request) -> dict[str, Runner]:
    runners: dict[str, Runner] = request.app.state.runners
    return runners


SettingsDep = Annotated[Settings, Depends(get_settings)]
RunnersDep = Annotated[dict[str, Runner], Depends(get_runners)]


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def get_artifacts(request: Request) -> ArtifactStore:
    artifacts: ArtifactStore = request.app.state.artifacts
    return artifacts


StoreDep = Annotated[Store, Depends(get_store)]
ArtifactsDep = Annotated[ArtifactStore, Depends(get_artifacts)]
