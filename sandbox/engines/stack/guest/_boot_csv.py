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
    import _sandlot_stack
    import matplotlib.pyplot
    import numpy
    import pandas

    _sandlot_stack.install()
    del numpy, pandas, matplotlib
    gc.collect()
    gc.freeze()


if "_sandlot_stack" not in _sys.modules:
    _sandlot_preload()
