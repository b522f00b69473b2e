"""Rich outputs, guest side: ``sandlot.display``, charts and a trailing value's HTML.

Each output is one ``{"mime_type", "data"}``: binary types (``image/png``,
``image/jpeg``, ``image/gif``) as base64, text types as text. The host checks every
one (mime type from its allowlist, base64 decodable, size counted against the run's
``output_bytes``) whichever way it arrives:

* the engine's glue sets a transport (:func:`set_transport`) that sends each output
  to the host as it is produced (the component's ``display`` import, the data-stack
  guest's door, a Pyodide worker message);
* without one, outputs are kept here and leave with the run's outcome
  (``outcome["outputs"]``, :func:`finish`).

The glue calls :func:`begin` before a job and :func:`finish` after it; ``_sandlot_exec``
calls :func:`show_result` with a trailing expression's value.

Figures still open when the code ends are drawn by :func:`finish`, after the code: they
are its epilogue, not its work. Where the glue can say what is left of the run's limits
(``set_transport``'s ``budget``: the data-stack guest's door), a figure that would take
the run over ``cpu_ms``, ``wall_ms`` or ``output_bytes`` is not drawn or not sent, and a
line on stderr says so: the code finished, so the run keeps its status, instead of ending
``cpu_limit`` or ``output_limit`` after a test suite that passed left its figures open.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import io
import os
import sys
import time
from collections.abc import Callable
from typing import Any

BINARY_TYPES = ("image/png", "image/jpeg", "image/gif")
TEXT_TYPES = (
    "image/svg+xml",
    "text/html",
    "text/markdown",
    "text/latex",
    "text/plain",
    "application/json",
)
# The IPython display protocol's methods, richest first.
_REPR_METHODS = (
    ("_repr_png_", "image/png"),
    ("_repr_jpeg_", "image/jpeg"),
    ("_repr_svg_", "image/svg+xml"),
    ("_repr_html_", "text/html"),
    ("_repr_markdown_", "text/markdown"),
    ("_repr_latex_", "text/latex"),
)
_FIGURE_TYPES = {"png": "image/png", "svg": "image/svg+xml"}
# The PNG a plain ``savefig("x.png")`` wrote, kept on the figure: if nothing changed since
# (matplotlib marks a changed figure stale), it is the figure's output as it stands.
_SAVED_PNG = "_sandlot_saved_png"

# (mime_type, data) -> None; raises when the host refuses the output.
Transport = Callable[[str, str], None]
# () -> what is left of the run's limits: {"cpu_ms", "wall_ms", "output_bytes"}.
Budget = Callable[[], dict[str, int]]
_transport: Transport | None = None
_budget: Budget | None = None
# Before a figure left open is drawn, at least this much CPU and wall time must be left
# (milliseconds), and twice what the slowest figure so far took: drawing one costs
# 0.1-0.5 s on the data-stack guest (BENCHMARKS.md).
EPILOGUE_MIN_MS = 300
# Output kept for the line that says which figures were left out.
_NOTE_BYTES = 400
_pending: list[dict[str, str]] = []
_figure_format = "png"


def set_transport(transport: Transport | None, budget: Budget | None = None) -> None:
    global _transport, _budget
    _transport, _budget = transport, budget


def begin(job: dict[str, Any]) -> None:
    """Reset for a job; make ``plt.show()`` send its figures back."""
    global _figure_format
    _pending.clear()
    _figure_format = job.get("figure_format") or "png"
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.show = _show
    figure = sys.modules.get("matplotlib.figure")
    if figure is not None and not hasattr(figure.Figure.savefig, "_sandlot_keeps_png"):
        figure.Figure.savefig = _keeping_png(figure.Figure.savefig)


def finish(outcome: dict[str, Any]) -> dict[str, Any]:
    """Send the figures still open, and attach what no transport took to ``outcome``."""
    try:
        _show_left_open()
    except BaseException as exc:  # a figure the code broke: say so, keep the outcome
        with contextlib.suppress(Exception):
            print(f"sandlot: open figures could not be sent back: {exc!r}", file=sys.stderr)
    if _pending:
        outcome = {**outcome, "outputs": list(_pending)}
        _pending.clear()
    return outcome


def display(obj: Any, *, mime_type: str | None = None) -> None:
    """Send ``obj`` back to the caller as one output, as a notebook would show it.

    With ``mime_type``, ``obj`` is the data itself: ``bytes`` for an image type, ``str``
    for a text type. Otherwise a matplotlib figure is rendered (PNG, or SVG when the
    request said ``figure_format: "svg"``), an object with IPython's display methods
    (``_repr_png_``, ``_repr_svg_``, ``_repr_html_``, ...) gives its richest one, and
    anything else its ``repr`` as ``text/plain``.

    Raises:
        ValueError: the mime type isn't one the host accepts, or the data doesn't fit it.
        TypeError: ``obj`` is not bytes/str for the ``mime_type`` given.
    """
    if mime_type is not None:
        _emit(mime_type, obj)
        return
    if _is_figure(obj):
        _emit(*_render_figure(obj))
        return
    rich = _rich_repr(obj)
    if rich is not None:
        _emit(*rich)
        return
    _emit("text/plain", repr(obj))


def show_result(value: Any) -> None:
    """A trailing expression's value: sent too when it has a rich (HTML, image) form."""
    if _is_figure(value):
        return  # still open: finish() sends it once
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(value, pandas.Series):
        value = value.to_frame()  # a Series has no HTML form of its own
    rich = _rich_repr(value)
    if rich is not None:
        _emit(*rich)


def _show(*_args: Any, **_kwargs: Any) -> None:
    """``plt.show()``: send every open figure back and close it."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return
    for number in pyplot.get_fignums():
        figure = pyplot.figure(number)
        try:
            _emit(*_render_figure(figure))
        finally:
            pyplot.close(figure)


def _show_left_open() -> None:
    """The figures still open at the end, each while the run's limits leave room for it."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return
    numbers = pyplot.get_fignums()
    if _budget is None:
        _show()
        return
    slowest_ms = 0.0
    for at, number in enumerate(numbers):
        figure = pyplot.figure(number)
        try:
            left = _budget()
            short = _short_of(left, max(EPILOGUE_MIN_MS, 2 * slowest_ms))
            if short is None:
                started = time.perf_counter()
                mime_type, data = _render_figure(figure)
                slowest_ms = max(slowest_ms, (time.perf_counter() - started) * 1000)
                size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8"))
                if size + _NOTE_BYTES > left["output_bytes"]:
                    short = "output_bytes"
                else:
                    _emit(mime_type, data)
        finally:
            pyplot.close(figure)
        if short is not None:
            for rest in numbers[at + 1 :]:
                pyplot.close(rest)
            if left["output_bytes"] >= _NOTE_BYTES:  # else there is no room to say so
                _say_left_out(numbers[at:], short)
            return


def _short_of(left: dict[str, int], needed_ms: float) -> str | None:
    """The limit too little is left of to draw a figure (``cpu_ms``, ``wall_ms``), if any."""
    for limit in ("cpu_ms", "wall_ms"):
        if left[limit] < needed_ms:
            return limit
    return None


def _say_left_out(numbers: list[int], limit: str) -> None:
    figures = ", ".join(str(number) for number in numbers[:8])
    if len(numbers) > 8:
        figures += ", ..."
    print(
        f"sandlot: {len(numbers)} figure(s) left open at the end were not sent back "
        f"(figure {figures}): drawing them would take the run over limits.{limit}. "
        f"Show or close figures as you go (plt.show(), plt.close()), or raise "
        f"limits.{limit}.",
        file=sys.stderr,
    )


def _is_figure(obj: Any) -> bool:
    figure = sys.modules.get("matplotlib.figure")
    return figure is not None and isinstance(obj, figure.Figure)


def _render_figure(figure: Any) -> tuple[str, bytes | str]:
    kind = _figure_format if _figure_format in _FIGURE_TYPES else "png"
    saved = figure.__dict__.get(_SAVED_PNG)
    if kind == "png" and saved is not None and not figure.stale:
        return "image/png", saved  # drawing a figure costs 0.1-0.5 s here: not twice
    buffer = io.BytesIO()
    figure.savefig(buffer, format=kind)
    data = buffer.getvalue()
    if kind == "svg":
        return "image/svg+xml", data.decode("utf-8")
    return "image/png", data


def _keeping_png(savefig: Callable[..., Any]) -> Callable[..., Any]:
    """``Figure.savefig`` that keeps the PNG of a plain ``savefig("name.png")``.

    Only a path ending in ``.png`` and no other option but ``format="png"``: then the
    bytes are exactly what rendering the figure again would give. The file gets the
    same bytes savefig itself would have written.
    """

    @functools.wraps(savefig)
    def keeping(self: Any, fname: Any, *args: Any, **kwargs: Any) -> Any:
        self.__dict__.pop(_SAVED_PNG, None)
        path = os.fspath(fname) if isinstance(fname, str | os.PathLike) else None
        plain = (
            not args
            and set(kwargs) <= {"format"}
            and kwargs.get("format", "png") == "png"
            and isinstance(path, str)
            and path.lower().endswith(".png")
        )
        if not plain:
            return savefig(self, fname, *args, **kwargs)
        buffer = io.BytesIO()
        savefig(self, buffer, format="png")
        data = buffer.getvalue()
        with open(path, "wb") as handle:  # type: ignore[arg-type]  # a str: plain says so
            handle.write(data)
        self.__dict__[_SAVED_PNG] = data
        # savefig's restoring of the figure's settings marks it stale; what it drew is
        # the figure as it stands, and any change from here on marks it stale again.
        self.stale = False
        return None

    keeping._sandlot_keeps_png = True  # type: ignore[attr-defined]
    return keeping


def _rich_repr(obj: Any) -> tuple[str, bytes | str] | None:
    if isinstance(obj, type):
        return None  # DataFrame's class has the methods too, unbound
    for method, mime_type in _REPR_METHODS:
        render = getattr(obj, method, None)
        if not callable(render):
            continue
        data = render()
        if isinstance(data, tuple):  # (data, metadata)
            data = data[0]
        if data is None:
            continue
        if mime_type in BINARY_TYPES and isinstance(data, str):
            data = base64.b64decode(data)
        return mime_type, data
    return None


def _emit(mime_type: str, data: Any) -> None:
    if mime_type in BINARY_TYPES:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"display data for {mime_type} must be bytes")
        text = base64.b64encode(data).decode("ascii")
    elif mime_type in TEXT_TYPES:
        if not isinstance(data, str):
            raise TypeError(f"display data for {mime_type} must be str")
        text = data
    else:
        allowed = ", ".join(BINARY_TYPES + TEXT_TYPES)
        raise ValueError(f"mime_type {mime_type!r} can't be displayed; use one of {allowed}")
    if _transport is None:
        _pending.append({"mime_type": mime_type, "data": text})
        return
    # What was printed before the output comes before it in the stream.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    _transport(mime_type, text)
