"""A DataTable that never shows columns at their pre-measure widths.

Why: Textual's DataTable measures new rows when it is next idle, but keeps the
lines it rendered before that in caches keyed on data, not widths, so a frame
drawn in between can stick ("RUNNIN" under "status") until something else
changes. Dropping the caches after each measurement fixes it.
"""
from __future__ import annotations

from textual.widgets import DataTable


class Table(DataTable):
    def _update_dimensions(self, new_rows) -> None:
        super()._update_dimensions(new_rows)
        clear = getattr(self, "_clear_caches", None)
        if clear is not None:
            clear()
