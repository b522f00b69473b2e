"""The synchronous client: ``Sandlot``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, Self, cast

import httpx

from sandlot_client import _wire
from sandlot_client._errors import SandlotError, from_httpx, from_response
from sandlot_client._results import Event, RunBuilder, RunResult, WorkerResponse
from sandlot_client._sse import SSEDecoder
from sandlot_client._types import ApiKey, Deployment, Namespace, Tool, Worker

__all__ = ["Sandlot"]

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
Runtime = Literal["wasmtime", "pyodide"]


class Sandlot:
    """A client of one Sandlot service.

    ``base_url`` and ``api_key`` default to ``SANDLOT_URL`` (else
    http://127.0.0.1:8000) and ``SANDLOT_API_KEY``. ``timeout`` is seconds per
    network wait (a streamed run sends a keep-alive every 15 s). API errors raise
    SandlotError; an unreachable service, SandlotConnectionError. Close it, or use
    it in a ``with`` block.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 300.0,
        http_client: httpx.Client | None = None,
    ) -> None:
        url, headers = _wire.settings(base_url, api_key)
        self.base_url = url
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

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        with self._translated():
            response = self._http.request(method, path, **kwargs)
        return _wire.read_json(response)

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
        its ``files``. Callbacks get
        each chunk as it is printed, in order; an exception in one ends the stream
        (and so cancels the run) and propagates. The code failing or hitting a limit
        is not raised: see the result's ``status``.
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
        builder, decoder = RunBuilder(), SSEDecoder()
        headers = {"accept": "text/event-stream"}
        with (
            self._translated(),
            self._http.stream("POST", "/v1/execute", json=body, headers=headers) as response,
        ):
            if response.status_code != 200:
                response.read()
                raise from_response(response)
            for line in response.iter_lines():
                sse = decoder.decode(line)
                if sse is None:
                    continue
                event = builder.add(sse)
                if event.name == "stdout" and on_stdout is not None:
                    on_stdout(event.data["text"])
                elif event.name == "stderr" and on_stderr is not None:
                    on_stderr(event.data["text"])
                if on_event is not None:
                    on_event(event)
                if builder.ended:
                    break
        return builder.result()

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
        source alone. A syntax error raises SandlotError ``build_failed`` naming the line."""
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
        return cast(
            Deployment, self._call("PUT", f"/v1/namespaces/{namespace}/workers/{name}", json=body)
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
        with self._translated():
            response = self._http.request(method, url, headers=sent, content=content, json=json)
        return _wire.worker_response(response)

    def get_worker(self, namespace: str, name: str) -> Worker:
        """The worker with its deployed modules (secret names only)."""
        return cast(Worker, self._call("GET", f"/v1/namespaces/{namespace}/workers/{name}"))

    def list_workers(self, namespace: str, *, tags: str | None = None) -> list[Worker]:
        """Every worker of the namespace, by name; ``tags`` filters like ``a:yes,b:no``."""
        found: list[Worker] = []
        cursor: str | None = None
        while True:
            params = {k: v for k, v in (("tags", tags), ("cursor", cursor)) if v is not None}
            page = self._call("GET", f"/v1/namespaces/{namespace}/workers", params=params)
            found.extend(page["workers"])
            cursor = page["next_cursor"]
            if cursor is None:
                return found

    def delete_worker(self, namespace: str, name: str) -> None:
        self._call("DELETE", f"/v1/namespaces/{namespace}/workers/{name}")

    # --- Namespaces -----------------------------------------------------------------------

    def create_namespace(
        self,
        name: str,
        *,
        mode: Literal["untrusted", "trusted"] = "untrusted",
        limits: Mapping[str, int] | None = None,
        allowed_hosts: Sequence[str] | None = None,
        dispatch_public: bool = True,
    ) -> Namespace:
        """Create a namespace (admin key); 409 SandlotError when the name is taken."""
        body = _wire.namespace_body(
            name,
            mode=mode,
            limits=limits,
            allowed_hosts=allowed_hosts,
            dispatch_public=dispatch_public,
        )
        return cast(Namespace, self._call("POST", "/v1/namespaces", json=body))

    def get_namespace(self, name: str) -> Namespace:
        return cast(Namespace, self._call("GET", f"/v1/namespaces/{name}"))

    def delete_namespace(self, name: str, *, force: bool = False) -> None:
        """Delete the namespace with its keys; 409 SandlotError while it has workers, unless
        ``force`` (then its workers go too)."""
        params = {"force": "true"} if force else None
        self._call("DELETE", f"/v1/namespaces/{name}", params=params)

    def create_key(self, namespace: str, label: str = "") -> ApiKey:
        """A new key of the namespace (admin key); ``key`` is in this answer only."""
        return cast(
            ApiKey, self._call("POST", f"/v1/namespaces/{namespace}/keys", json={"label": label})
        )

    # --- Tools for models -----------------------------------------------------------------

    def tools(self) -> list[Tool]:
        """execute_code, deploy_worker and invoke_worker in OpenAI's function-calling format."""
        return cast(list[Tool], self._call("GET", "/v1/tools"))

    def call_tool(self, name: str, arguments: Mapping[str, Any] | str) -> str:
        """Run a model's tool call (arguments as an object or a JSON string) and return the
        text to hand back to it. A refused call is text saying why, not an exception."""
        parsed = _wire.tool_arguments(arguments)
        if isinstance(parsed, str):
            return parsed
        try:
            return str(self._call("POST", f"/v1/tools/{name}", json=parsed)["text"])
        except SandlotError as exc:
            if exc.status_code != 404:
                raise
            return f"error ({exc.code}): {exc.message}"  # a tool the model made up
