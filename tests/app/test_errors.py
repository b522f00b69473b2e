"""app/errors.py: every domain exception maps to one status and the one JSON error shape."""

from __future__ import annotations

import inspect

import pytest

from app import errors
from app.errors import ApiError, as_api_error, from_sandbox_error, from_store_error
from app.store import errors as store_errors
from sandbox import errors as sandbox_errors


def _subclasses(root: type[Exception]) -> list[type[Exception]]:
    found: list[type[Exception]] = []
    for kind in root.__subclasses__():
        found += [kind, *_subclasses(kind)]
    return found


def _instance(kind: type[Exception]) -> Exception:
    # Each store error takes its identifying names (and counts) as arguments.
    parameters = list(inspect.signature(kind.__init__).parameters.values())[1:]
    values = [3 if p.annotation in (int, "int") else f"x{i}" for i, p in enumerate(parameters)]
    return kind(*values)


STORE_ERRORS = _subclasses(store_errors.StoreError)


@pytest.mark.parametrize("kind", STORE_ERRORS, ids=lambda kind: kind.__name__)
def test_every_store_error_has_a_status_and_its_own_message(kind: type[Exception]) -> None:
    exc = _instance(kind)
    assert isinstance(exc, store_errors.StoreError)
    error = from_store_error(exc)
    assert error.status_code in (404, 409, 413)
    assert error.code == exc.code and error.message == exc.message
    assert as_api_error(exc) is not None
    # Every exception the tree exports is in the module's public surface.
    assert kind.__name__ in store_errors.__all__


def test_the_tree_is_the_one_the_modules_raise() -> None:
    from app.store import hostnames, keys, namespaces, workers

    assert namespaces.NamespaceNotFound is store_errors.NamespaceNotFound
    assert workers.WorkerNotFound is store_errors.WorkerNotFound
    assert workers.QuotaExceeded is store_errors.QuotaExceeded
    assert keys.KeyNotFound is store_errors.KeyNotFound
    assert hostnames.HostnameTaken is store_errors.HostnameTaken


def test_a_store_error_outside_every_branch_is_a_bug_not_a_500() -> None:
    class Unmapped(store_errors.StoreError):
        pass

    with pytest.raises(TypeError, match="Unmapped"):
        from_store_error(Unmapped("nobody mapped me"))


def test_quota_names_the_field_to_fix() -> None:
    error = from_store_error(store_errors.QuotaExceeded("ns", 1024, 1000, 100))
    assert (error.status_code, error.code) == (413, "storage_quota_exceeded")
    assert [d.field for d in error.details] == ["modules"]


@pytest.mark.parametrize(
    "kind", _subclasses(sandbox_errors.SandboxError), ids=lambda kind: kind.__name__
)
def test_every_sandbox_error_has_a_status(kind: type[Exception]) -> None:
    exc = kind("broken")
    assert isinstance(exc, sandbox_errors.SandboxError)
    error = from_sandbox_error(exc)
    assert error.status_code in (429, 500, 503)
    assert as_api_error(exc) is not None


def test_install_registers_a_handler_for_every_domain_root() -> None:
    from fastapi import FastAPI

    app = FastAPI()
    errors.install(app)
    for root in (ApiError, store_errors.StoreError, sandbox_errors.SandboxError):
        assert root in app.exception_handlers, root
