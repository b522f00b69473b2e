"""/v1/namespaces/{ns}/workers/{name}/secrets: a worker's secrets one at a time, names only out.

Secrets are the worker's, not a version's: setting or deleting one makes no new version
and applies from the worker's next request; code uploads that send no ``secrets`` keep
them, and a rollback keeps them too.
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

from fastapi import APIRouter, Path, Response

from app.auth import CallerDep, require_namespace
from app.deps import StoreDep
from app.errors import CONTROL_PLANE_ERRORS, invalid_field
from app.schemas import WORKER_NAME, ErrorResponse, SecretIn, SecretList, SecretOut
from app.store import workers

router = APIRouter(prefix="/v1/namespaces/{namespace}/workers/{name}/secrets", tags=["workers"])

_ERRORS: dict[int | str, dict[str, object]] = {
    **CONTROL_PLANE_ERRORS,
    422: {"model": ErrorResponse, "description": "A secret name that isn't an env name"},
}
# The same rule as an upload's vars and secrets: names a program could read from env.
_SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
WorkerName = Annotated[str, Path(pattern=WORKER_NAME)]
SecretName = Annotated[str, Path(description="Like an environment variable: API_TOKEN")]


def _checked(secret: str) -> str:
    if not _SECRET_NAME.match(secret):
        raise invalid_field(
            "secret",
            f"{secret!r}: a secret's name is letters, digits and '_', not starting with a "
            "digit (like API_TOKEN)",
        )
    return secret


@router.get("", response_model=SecretList, responses=_ERRORS)
async def list_secrets(
    namespace: str, name: WorkerName, store: StoreDep, caller: CallerDep
) -> SecretList:
    """The names of the worker's secrets (values are never returned)."""
    require_namespace(caller, namespace)
    worker = await asyncio.to_thread(workers.get, store, namespace, name)
    return SecretList(secrets=worker.secret_names)


@router.put(
    "/{secret}",
    response_model=SecretOut,
    responses={**_ERRORS, 201: {"model": SecretOut, "description": "A new secret"}},
)
async def put_secret(
    namespace: str,
    name: WorkerName,
    secret: SecretName,
    body: SecretIn,
    store: StoreDep,
    caller: CallerDep,
    response: Response,
) -> SecretOut:
    """Set one secret (201 new, 200 replaced); the others and the code stay as they are."""
    require_namespace(caller, namespace)
    _checked(secret)
    created = await asyncio.to_thread(
        workers.set_secret, store, namespace, name, secret, body.value
    )
    response.status_code = 201 if created else 200
    return SecretOut(name=secret, created=created)


@router.delete("/{secret}", status_code=204, responses=_ERRORS)
async def delete_secret(
    namespace: str, name: WorkerName, secret: SecretName, store: StoreDep, caller: CallerDep
) -> Response:
    """Remove one secret; 404 if the worker has none of that name."""
    require_namespace(caller, namespace)
    await asyncio.to_thread(workers.delete_secret, store, namespace, name, secret)
    return Response(status_code=204)
