"""matplotlib's bundled fonts, guest side: their SFNT tables read once, not per text.

Laying out a text (``matplotlib.text.Text._get_layout``) asks the font for its ``OS/2``
and ``head`` tables every time: a chart with two small panels does it about 600 times.
Each answer is a new dict that FreeType's binding builds field by field, about 40 us in
WebAssembly (23 ms of a 260 ms chart, measured in the guest). The tables of a font file
never change, and the fonts matplotlib ships sit on a read-only mount: for those, the
first answer is kept (made while the snapshot is made, so runs start with it) and every
call gets its own copy. Fonts anywhere else (a file the code wrote, a system font) are
read every time, as before.

:func:`install` runs once, while the snapshot is made (``_boot_csv.py``).
"""

from __future__ import annotations

import posixpath
from typing import Any

_Table = dict[str, Any] | None
_tables: dict[tuple[str, int, str], _Table] = {}


def install() -> None:
    import matplotlib
    from matplotlib import ft2font

    if getattr(ft2font.FT2Font.get_sfnt_table, "_sandlot_cached", False):
        return
    # The mount is read-only (sandbox/engines/stack/host.py): the files can't change.
    bundled = matplotlib.get_data_path().rstrip("/") + "/"
    read_table = ft2font.FT2Font.get_sfnt_table

    def get_sfnt_table(self: Any, name: str) -> _Table:
        fname = getattr(self, "fname", None)
        # Normalised: a path through ``..`` may start with the prefix and lead elsewhere.
        if not isinstance(fname, str) or not posixpath.normpath(fname).startswith(bundled):
            return read_table(self, name)  # type: ignore[no-any-return]
        key = (fname, self.face_index, name)
        try:
            table = _tables[key]
        except KeyError:
            table = _tables[key] = read_table(self, name)
        # Callers may change what they get: never the kept one.
        return None if table is None else dict(table)

    get_sfnt_table.__doc__ = read_table.__doc__
    get_sfnt_table._sandlot_cached = True  # type: ignore[attr-defined]
    ft2font.FT2Font.get_sfnt_table = get_sfnt_table
