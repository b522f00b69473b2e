"""``csv``, as the data-stack snapshot is made (sandbox/engines/stack/builder.py).

The reactor imports ``csv`` while it starts, once the interpreter is complete: the one
place where code of ours runs before Wizer writes the snapshot. This module is the
stdlib's ``csv`` (its original code runs first, from the zip) and then imports, once,
what every run should find loaded: numpy, pandas, matplotlib with the Agg backend and
pyplot, and our guest glue; then freezes the heap, so the collector never walks it.
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
    import io

    _sys.path.insert(0, _archive + "/_sandlot")
    import _sandlot_stack
    import matplotlib.pyplot
    import numpy
    import pandas

    # The first figure of a process loads fonts and sets up the renderer (about 150 ms):
    # done once here, every run finds them ready.
    figure, axes = matplotlib.pyplot.subplots()
    axes.plot([0, 1], [1, 0], label="warm")
    axes.set_title("warm")
    axes.legend()
    figure.savefig(io.BytesIO(), format="png")
    figure.savefig(io.BytesIO(), format="svg")
    matplotlib.pyplot.close("all")
    # What data code reaches for next (see _LATER), imported once here instead of per run.
    for name in _LATER:
        try:
            __import__(name)
        except Exception:  # a module that can't load here loads (or fails) in the run
            _sys.modules.pop(name, None)

    _sandlot_stack.install()
    # No file may stay open in the snapshot: its descriptor number means something else
    # in every run, and closing it there would close whatever the run has under that
    # number (measured: matplotlib's cached fonts closed the run's font directory).
    import matplotlib.font_manager

    matplotlib.font_manager._get_font.cache_clear()
    del numpy, pandas, matplotlib, figure, axes
    gc.collect()
    _close_open_files()
    gc.freeze()


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
)


if "_sandlot_stack" not in _sys.modules:
    _sandlot_preload()
