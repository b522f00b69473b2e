"""The synchronous client: ``Sandlot``."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, Self

import httpx

from sandlot_client import _session, _wire
from sandlot_client._errors import SandlotError, from_httpx, from_response
from sandlot_client._observe import (
    Invocation,
    NamespaceUsage,
    TailDropped,
    tail_item,
    tail_path,
    usage_params,
    usage_path,
)
from sandlot_client._results import (
    Event,
    Generation,
    GenerationBuilder,
    RunBuilder,
    RunResult,
    WorkerResponse,
)
from sandlot_client._retry import Retry
from sandlot_client._session import Session
from sandlot_client._sse import ServerSentEvent, SSEDecoder
from sandlot_client._types import ApiKey, Deployment, Hostname, Namespace, Tool, Version, Worker
from sandlot_client._wire import Call, segment

__all__ = ["Sandlot"]

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
Runtime = Literal["wasmtime", "pyodide"]


class Sandlot:
    """A client of one Sandlot service.

    ``base_url`` and ``api_key`` default to ``SANDLOT_URL`` (else
    http://127.0.0.1:8000) and ``SANDLOT_API_KEY``. ``timeout`` is seconds per
    network wait (a streamed run sends a keep-alive every 15 s). ``retry``: how
    429 and 503 answers are retried (a ``Retry``, a number of retries, 0 for none;
    by default twice, idempotent calls only). API errors raise SandlotError; an
    unreachable service, SandlotConnectionError. Close it, or use it in a ``with``
    block.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 300.0,
        retry: Retry | int | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        url, headers = _wire.settings(base_url, api_key)
        self.base_url = url
        self.retry = Retry.of(retry)
        self._http = http_client or httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0))
        self._http.base_url = httpx.URL(url)
        self._http.headers.update(headers)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except httpx.RequestError as exc:
            raise from_httpx(exc) from exc

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request, sent again while the retry policy says so."""
        retry = 0
        while True:
            with self._translated():
                response = self._http.request(method, url, **kwargs)
            retry += 1
            wait = _wire.retry_wait(self.retry, method, response, retry)
            if wait is None:
                return response
            response.close()
            time.sleep(wait)

    def _do[T](self, call: Call[T]) -> T:
        response = self._send(call.method, call.path, json=call.json, params=call.params)
        return call.parse(_wire.read_json(response))

    def _events(
        self, path: str, body: dict[str, Any] | None, method: str = "POST"
    ) -> Generator[ServerSentEvent, None, None]:
        """The events of a streamed POST (or GET, ``body`` None); refusals before the stream
        starts are retried as the policy says."""
        headers = {"accept": "text/event-stream"}
        retry = 0
        while True:
            with (
                self._translated(),
                self._http.stream(method, path, json=body, headers=headers) as response,
            ):
                if response.status_code == 200:
                    decoder = SSEDecoder()
                    for line in response.iter_lines():
                        sse = decoder.decode(line)
                        if sse is not None:
                            yield sse
                    return
                response.read()
                retry += 1
                wait = _wire.retry_wait(self.retry, method, response, retry)
                if wait is None:
                    raise from_response(response)
            time.sleep(wait)

    # --- Running code ---------------------------------------------------------------------

    def run_code(
        self,
        code: str,
        *,
        runtime: Runtime | None = None,
        limits: Mapping[str, int] | None = None,
        allowed_hosts: Sequence[str] | None = None,
        stdin: str | None = None,
        files: Mapping[str, _wire.FileContent] | None = None,
        env: Mapping[str, str] | None = None,
        requirements: Sequence[str] | None = None,
        figure_format: Literal["png", "svg"] | None = None,
        return_files: Sequence[str] | None = None,
        on_stdout: Callable[[str], object] | None = None,
        on_stderr: Callable[[str], object] | None = None,
        on_event: Callable[[Event], object] | None = None,
    ) -> RunResult:
        """Run ``code`` once in a fresh sandbox, streaming its output to the callbacks.

        ``limits``: any of cpu_ms, wall_ms, memory_mb, output_bytes, subrequests.
        ``files``: path → text, bytes, or ``{"content", "encoding"}``. Charts and tables
        come back in the result's ``outputs`` (``figure_format`` "svg" for SVG figures);
        ``return_files`` globs ("*.csv") bring files of the working directory back in
        its ``files``. Callbacks get each chunk as it is printed, in order; an exception
        in one ends the stream (and so cancels the run) and propagates. The code failing
        or hitting a limit is not raised: see the result's ``status``.
        """
        body = _wire.execute_body(
            code,
            runtime=runtime,
            limits=limits,
            allowed_hosts=allowed_hosts,
            stdin=stdin,
            files=files,
            env=env,
            requirements=requirements,
            figure_format=figure_format,
            return_files=return_files,
        )
        builder = RunBuilder()
        events = self._events("/v1/execute", body)
        try:
            for sse in events:
                event = builder.add(sse)
                _output(event, on_stdout, on_stderr)
                if on_event is not None:
                    on_event(event)
                if builder.ended:
                    break
        finally:
            events.close()
        return builder.result()

    def generate(
        self,
        task: str,
        *,
        runtime: Runtime | None = None,
        limits: Mapping[str, int] | None = None,
        allowed_hosts: Sequence[str] | None = None,
        max_attempts: int | None = None,
        namespace: str | None = None,
        worker: str | None = None,
        on_token: Callable[[str], object] | None = None,
        on_code: Callable[[str], object] | None = None,
        on_stdout: Callable[[str], object] | None = None,
        on_stderr: Callable[[str], object] | None = None,
        on_event: Callable[[Event], object] | None = None,
    ) -> Generation:
        """Turn ``task`` into code that has run (generate → run → repair), streaming.

        With ``namespace`` and ``worker`` the code becomes that worker (deployed, checked
        with a ``GET /``). ``on_token`` gets the model's answer as it arrives, ``on_code``
        each attempt's extracted code, ``on_stdout``/``on_stderr`` its run's output, and
        ``on_event`` every event of the stream (docs/ai.md). Failing code is not raised:
        see the result's ``status``. A server without a model raises SandlotError 503
        ``model_not_configured``.
        """
        body = _wire.generate_body(
            task,
            runtime=runtime,
            limits=limits,
            allowed_hosts=allowed_hosts,
            max_attempts=max_attempts,
            namespace=namespace,
            worker=worker,
        )
        builder = GenerationBuilder()
        events = self._events("/v1/generate", body)
        try:
            for sse in events:
                event, run_event = builder.add(sse)
                if event.name == "token" and on_token is not None:
                    on_token(event.data["text"])
                elif event.name == "code" and on_code is not None and event.data.get("code"):
                    on_code(event.data["code"])
                elif run_event is not None:
                    _output(run_event, on_stdout, on_stderr)
                if on_event is not None:
                    on_event(event)
                if builder.ended:
                    break
        finally:
            events.close()
        return builder.result()

    # --- Sessions -------------------------------------------------------------------------

    def session(
        self,
        *,
        runtime: Runtime | None = None,
        limits: Mapping[str, int] | None = None,
        allowed_hosts: Sequence[str] | None = None,
        memory_mb: int | None = None,
        idle_timeout_s: int | None = None,
        max_lifetime_s: int | None = None,
    ) -> Session:
        """A session: an interpreter that keeps its globals and files between runs.

        Opened when its ``with`` block starts, closed when it ends. ``limits`` apply to
        each run (cpu_ms, wall_ms, output_bytes, subrequests); ``memory_mb`` is the whole
        session's. Ends on the service after ``idle_timeout_s`` without a call.
        """
        body = _session.create_body(
            runtime=runtime,
            limits=limits,
            allowed_hosts=allowed_hosts,
            memory_mb=memory_mb,
            idle_timeout_s=idle_timeout_s,
            max_lifetime_s=max_lifetime_s,
        )
        return Session(self, body)

    # --- Workers --------------------------------------------------------------------------

    def deploy_worker(
        self,
        namespace: str,
        name: str,
        modules: Mapping[str, str] | str,
        *,
        main_module: str = "main.py",
        runtime: Runtime | None = None,
        requirements: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        limits: Mapping[str, int] | None = None,
        allowed_hosts: Sequence[str] | None = None,
        vars: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> Deployment:
        """Upload (build, store, deploy) a worker; ``modules`` may be the main module's
        source alone. ``vars``/``secrets`` left as None keep the worker's; a mapping
        replaces them all (``{}`` clears). A syntax error raises SandlotError
        ``build_failed`` naming the line."""
        body = _wire.worker_body(
            modules,
            main_module=main_module,
            runtime=runtime,
            requirements=requirements,
            tags=tags,
            limits=limits,
            allowed_hosts=allowed_hosts,
            vars=vars,
            secrets=secrets,
        )
        return self._do(
            Call("PUT", _wire.worker_path(namespace, name), Deployment.from_json, json=body)
        )

    def invoke_worker(
        self,
        namespace: str,
        name: str,
        path: str = "/",
        *,
        method: Method = "GET",
        headers: Mapping[str, str] | None = None,
        body: bytes | str | None = None,
        json: Any = None,
        limits: Mapping[str, int] | None = None,
    ) -> WorkerResponse:
        """One request to the worker through dispatch (``path`` may carry a query).

        ``limits`` (per call) can only lower the worker's. The worker raising or
        hitting a limit is a WorkerResponse with that ``outcome``; an unknown worker
        or a refused key raises SandlotError.
        """
        url, sent = _wire.invoke_request(namespace, name, path, headers=headers, limits=limits)
        content = body.encode() if isinstance(body, str) else body
        response = self._send(method, url, headers=sent, content=content, json=json)
        return _wire.worker_response(response)

    def tail(self, namespace: str, name: str) -> Iterator[Invocation | TailDropped]:
        """The worker's invocations as they finish, live, until the server ends the tail
        (it shuts down) or the caller stops iterating; a TailDropped where this client read
        too slowly and invocations were missed. Needs the admin key or the namespace's."""
        for sse in self._events(tail_path(namespace, name), None, "GET"):
            if sse.event == "end":
                return
            item = tail_item(sse)
            if item is not None:
                yield item

    def usage(
        self, namespace: str, *, first: str | None = None, last: str | None = None
    ) -> NamespaceUsage:
        """What the namespace used per UTC day from ``first`` to ``last`` (YYYY-MM-DD,
        inclusive; by default the last 30 days): runs, dispatches, CPU, wall time,
        subrequests and egress bytes."""
        call = Call(
            "GET",
            usage_path(namespace),
            NamespaceUsage.from_json,
            params=usage_params(first, last),
        )
        return self._do(call)

    def get_worker(self, namespace: str, name: str) -> Worker:
        """The worker with its deployed modules (secret names only)."""
        return self._do(Call("GET", _wire.worker_path(namespace, name), Worker.from_json))

    def list_workers(self, namespace: str, *, tags: str | None = None) -> list[Worker]:
        """Every worker of the namespace, by name; ``tags`` filters like ``a:yes,b:no``."""
        found: list[Worker] = []
        cursor: str | None = None
        while True:
            params = {k: v for k, v in (("tags", tags), ("cursor", cursor)) if v is not None}
            page = self._do(
                Call("GET", _wire.workers_path(namespace), _wire.read_page, params=params)
            )
            found.extend(Worker.from_json(item) for item in page["workers"])
            cursor = page["next_cursor"]
            if cursor is None:
                return found

    def delete_worker(self, namespace: str, name: str) -> None:
        self._do(Call("DELETE", _wire.worker_path(namespace, name), _wire.read_nothing))

    def delete_workers(self, namespace: str, *, tags: str) -> list[str]:
        """Delete every worker matching the tag filter (``a:yes,b:no``); their names."""
        call = Call(
            "DELETE", _wire.workers_path(namespace), _wire.read_deleted, params={"tags": tags}
        )
        return self._do(call)

    def set_tags(self, namespace: str, name: str, tags: Sequence[str]) -> Worker:
        """Replace the worker's tags (at most 8)."""
        call = Call(
            "PUT",
            _wire.worker_path(namespace, name) + "/tags",
            Worker.from_json,
            json={"tags": list(tags)},
        )
        return self._do(call)

    def list_versions(self, namespace: str, name: str) -> list[Version]:
        """The worker's versions kept, oldest first; ``deployed`` marks the one serving."""
        return self._do(
            Call("GET", _wire.worker_path(namespace, name) + "/versions", _wire.read_versions)
        )

    def deploy_version(self, namespace: str, name: str, version: int | str) -> Worker:
        """Serve an earlier version again (rollback), by number (3) or id ("ver_...").
        The worker's vars and secrets stay."""
        path = f"{_wire.worker_path(namespace, name)}/versions/{segment(version)}/deploy"
        return self._do(Call("POST", path, Worker.from_json))

    def list_secrets(self, namespace: str, name: str) -> list[str]:
        """The names of the worker's secrets (values are never returned)."""
        return self._do(
            Call("GET", _wire.worker_path(namespace, name) + "/secrets", _wire.read_secret_names)
        )

    def set_secret(self, namespace: str, name: str, secret: str, value: str) -> bool:
        """Set one secret of the worker (no new version; the next request sees it);
        True when it is new. The other secrets, the vars and the code stay."""
        path = f"{_wire.worker_path(namespace, name)}/secrets/{segment(secret)}"
        return self._do(Call("PUT", path, _wire.read_created, json={"value": value}))

    def delete_secret(self, namespace: str, name: str, secret: str) -> None:
        """Remove one secret; 404 SandlotError if the worker has none of that name."""
        path = f"{_wire.worker_path(namespace, name)}/secrets/{segment(secret)}"
        self._do(Call("DELETE", path, _wire.read_nothing))

    # --- Namespaces and keys --------------------------------------------------------------

    def create_namespace(
        self,
        name: str,
        *,
        mode: Literal["untrusted", "trusted"] = "untrusted",
        limits: Mapping[str, int] | None = None,
        allowed_hosts: Sequence[str] | None = None,
        dispatch_public: bool = True,
        private_egress: bool = False,
        custom_hostname_suffixes: Sequence[str] | None = None,
        storage_mb: int | None = None,
        version_retention: int | None = None,
    ) -> Namespace:
        """Create a namespace (admin key); 409 SandlotError when the name is taken."""
        body = _wire.namespace_body(
            name,
            mode=mode,
            limits=limits,
            allowed_hosts=allowed_hosts,
            dispatch_public=dispatch_public,
            private_egress=private_egress,
            custom_hostname_suffixes=custom_hostname_suffixes,
            storage_mb=storage_mb,
            version_retention=version_retention,
        )
        return self._do(Call("POST", "/v1/namespaces", Namespace.from_json, json=body))

    def get_namespace(self, name: str) -> Namespace:
        return self._do(Call("GET", _wire.namespace_path(name), Namespace.from_json))

    def list_namespaces(self) -> list[Namespace]:
        """Every namespace the key sees, by name (the admin key: all)."""
        found: list[Namespace] = []
        cursor: str | None = None
        while True:
            params = {"cursor": cursor} if cursor is not None else None
            page = self._do(Call("GET", "/v1/namespaces", _wire.read_page, params=params))
            found.extend(Namespace.from_json(item) for item in page["namespaces"])
            cursor = page["next_cursor"]
            if cursor is None:
                return found

    def update_namespace(self, name: str, **changes: Any) -> Namespace:
        """Change some of a namespace's fields (admin key): mode, limits (replaced whole),
        allowed_hosts, dispatch_public, private_egress, custom_hostname_suffixes,
        storage_mb, version_retention. TypeError for any other name."""
        body = _wire.namespace_changes(changes)
        return self._do(Call("PATCH", _wire.namespace_path(name), Namespace.from_json, json=body))

    def delete_namespace(self, name: str, *, force: bool = False) -> None:
        """Delete the namespace with its keys; 409 SandlotError while it has workers, unless
        ``force`` (then its workers go too)."""
        params = {"force": "true"} if force else None
        self._do(Call("DELETE", _wire.namespace_path(name), _wire.read_nothing, params=params))

    def create_key(self, namespace: str, label: str = "") -> ApiKey:
        """A new key of the namespace (admin key); ``key`` is in this answer only."""
        path = _wire.namespace_path(namespace) + "/keys"
        return self._do(Call("POST", path, ApiKey.from_json, json={"label": label}))

    def list_keys(self, namespace: str) -> list[ApiKey]:
        """The namespace's keys (ids and labels; never the keys themselves)."""
        return self._do(Call("GET", _wire.namespace_path(namespace) + "/keys", _wire.read_keys))

    def revoke_key(self, namespace: str, key_id: str) -> None:
        """The key stops working at once."""
        path = f"{_wire.namespace_path(namespace)}/keys/{segment(key_id)}"
        self._do(Call("DELETE", path, _wire.read_nothing))

    # --- Custom hostnames -----------------------------------------------------------------

    def set_hostname(
        self, namespace: str, hostname: str, worker: str, *, reassign: bool = False
    ) -> Hostname:
        """Route ``hostname`` to the namespace's worker; ``reassign`` (admin key) moves a
        hostname another namespace holds."""
        path = f"{_wire.namespace_path(namespace)}/hostnames/{segment(hostname)}"
        params = {"reassign": "true"} if reassign else None
        call = Call("PUT", path, Hostname.from_json, json={"worker": worker}, params=params)
        return self._do(call)

    def list_hostnames(self, namespace: str) -> list[Hostname]:
        return self._do(
            Call("GET", _wire.namespace_path(namespace) + "/hostnames", _wire.read_hostnames)
        )

    def delete_hostname(self, namespace: str, hostname: str) -> None:
        path = f"{_wire.namespace_path(namespace)}/hostnames/{segment(hostname)}"
        self._do(Call("DELETE", path, _wire.read_nothing))

    # --- Tools for models -----------------------------------------------------------------

    def tools(self) -> list[Tool]:
        """execute_code, deploy_worker and invoke_worker in OpenAI's function-calling format."""
        return self._do(Call("GET", "/v1/tools", _wire.read_tools))

    def call_tool(self, name: str, arguments: Mapping[str, Any] | str) -> str:
        """Run a model's tool call (arguments as an object or a JSON string) and return the
        text to hand back to it. A refused call is text saying why, not an exception."""
        parsed = _wire.tool_arguments(arguments)
        if isinstance(parsed, str):
            return parsed
        try:
            return self._do(
                Call("POST", f"/v1/tools/{segment(name)}", _wire.read_text, json=parsed)
            )
        except SandlotError as exc:
            if exc.status_code != 404:
                raise
            return f"error ({exc.code}): {exc.message}"  # a tool the model made up


def _output(
    event: Event,
    on_stdout: Callable[[str], object] | None,
    on_stderr: Callable[[str], object] | None,
) -> None:
    if event.name == "stdout" and on_stdout is not None:
        on_stdout(event.data["text"])
    elif event.name == "stderr" and on_stderr is not None:
        on_stderr(event.data["text"])
