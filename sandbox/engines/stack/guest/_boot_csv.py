"""``csv``, as the data-stack snapshot is made (sandbox/engines/stack/builder.py).

The reactor imports ``csv`` while it starts, once the interpreter is complete: the one
place where code of ours runs before Wizer writes the snapshot. This module is the
stdlib's ``csv`` (its original code runs first, from the zip) and then imports, once,
what every run should find loaded: numpy, pandas, matplotlib with the Agg backend and
pyplot, what data code reaches for next, and our guest glue; draws warm-up figures (so a
run's chart finds matplotlib's first-use work done) and keeps the bundled fonts' tables
(``_sandlot_fonts``); then freezes the heap, so the collector never walks it.
"""

import marshal as _marshal
import sys as _sys

_archive = __loader__.archive  # type: ignore[name-defined]  # zipimport's loader
exec(
    _marshal.loads(__loader__.get_data(_archive + "/_sandlot_boot/csv.pyc")[16:]),  # type: ignore[name-defined]
    globals(),
)


def _sandlot_preload() -> None:
    import gc
    import os

    # matplotlib writes its font cache here while the snapshot is made; a run finds
    # the font manager loaded and never looks again.
    os.environ["MPLCONFIGDIR"] = "/tmp/matplotlib"
    os.makedirs("/tmp/matplotlib", exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")

    _sys.path.insert(0, _archive + "/_sandlot")
    import _sandlot_stack
    import matplotlib.pyplot
    import numpy
    import pandas

    # What data code reaches for next (see _LATER), imported once here instead of per run.
    for name in _LATER:
        try:
            __import__(name)
        except Exception:  # a module that can't load here loads (or fails) in the run
            _sys.modules.pop(name, None)

    import _sandlot_fonts

    _sandlot_fonts.install()
    _draw_warm_up_figures()
    _sandlot_stack.install()
    # 11 ms in a run, on the stand-in for _ssl that install() put in place
    # (sandbox/guest/_sandlot_ssl.py): requests, geopy and tests that patch it import it.
    import ssl  # noqa: F401

    # No file may stay open in the snapshot: its descriptor number means something else
    # in every run, and closing it there would close whatever the run has under that
    # number (measured: matplotlib's cached fonts closed the run's font directory).
    import matplotlib.font_manager

    matplotlib.font_manager._get_font.cache_clear()
    del numpy, pandas, matplotlib
    gc.collect()
    _close_open_files()
    gc.freeze()


def _draw_warm_up_figures() -> None:
    """Draw what charts usually hold, twice, to PNG and SVG in memory.

    A process's first figures load the fonts, fill matplotlib's caches and let the
    interpreter specialise the drawing code's bytecode: done here, once, each run finds
    it done. Leaves no figure open and rcParams, the warnings filters and registries and
    matplotlib's unit converters as they were (tests/engines/test_stack_runtime.py).
    """
    import io
    import warnings

    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    x = np.linspace(0.0, 10.0, 200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(2):
            figure, ((lines, bars), (points, image)) = plt.subplots(2, 2, figsize=(8, 6))
            lines.plot(x, np.sin(x), label="sin")
            lines.plot(x, np.cos(x), "--o", markevery=20, label="cos")
            lines.fill_between(x, np.sin(x), 0.0, alpha=0.2)
            lines.set_xlabel("x")
            lines.set_ylabel("y")
            lines.set_title("lines")
            lines.legend()
            lines.grid(True)
            bars.bar(["a", "b", "c", "d"], [3.0, 7.0, 2.0, 5.0], color="tab:orange")
            pd.Series([1.0, 3.0, 2.0], index=["p", "q", "r"]).plot(kind="bar", ax=bars)
            points.scatter(x[::10], np.sin(x[::10]), c=x[::10], cmap="viridis", s=12)
            points.hist(np.sin(x), bins=20, alpha=0.5)
            points.annotate("peak", xy=(1.5, 1.0))
            shown = image.imshow(np.outer(np.sin(x[:20]), np.cos(x[:20])))
            figure.colorbar(shown, ax=image)
            figure.suptitle("warm-up")
            figure.tight_layout()
            figure.savefig(io.BytesIO(), format="png")
            figure.savefig(io.BytesIO(), format="svg")
            plt.close("all")


def _close_open_files() -> None:
    import gc
    import io

    for obj in gc.get_objects():
        if isinstance(obj, io.IOBase) and not obj.closed:
            try:
                if obj.fileno() > 2:
                    obj.close()
            except (OSError, ValueError):
                pass


_LATER = (
    # Each costs 10 ms to a second to import in a run (measured in the guest); what
    # data tasks import beyond numpy, pandas and pyplot, and what their tests use.
    "scipy.optimize",
    "scipy.stats",
    "scipy.interpolate",
    "scipy.signal",
    "sklearn.linear_model",
    "sklearn.ensemble",
    "sklearn.model_selection",
    "sklearn.preprocessing",
    "sklearn.cluster",
    "sklearn.metrics",
    "sklearn.tree",
    "sklearn.datasets",
    "sklearn.decomposition",
    "sklearn.feature_extraction.text",
    "sklearn.naive_bayes",
    "sklearn.neighbors",
    "sklearn.pipeline",
    "sklearn.svm",
    "statsmodels.api",
    "statsmodels.formula.api",
    "statsmodels.tsa.api",
    "seaborn",
    "pandas.plotting._matplotlib",
    "matplotlib.animation",
    "networkx",
    "sympy",
    "bs4",
    "lxml.etree",
    "openpyxl",
    "xlsxwriter",
    "xlrd",
    "yaml",
    "jinja2",
    "regex",
    "tabulate",
    "xmltodict",
    "tqdm",
    "sqlite3",
    "unittest",
    "unittest.mock",
    "xml.etree.ElementTree",
    # 6-8 ms each; the glue runs their pools in-line (sandbox/guest/_sandlot_pools.py).
    "multiprocessing.pool",
    "concurrent.futures.process",
)


if "_sandlot_stack" not in _sys.modules:
    _sandlot_preload()
