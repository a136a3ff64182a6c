"""Terminal tables whose columns are as wide as what they hold, so long run ids or names never run into the
next column (the CLI's listings: runs, steps, models, deployments, history, monitor features)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

GAP = "  "  # between columns: two spaces, so even a full column stays apart from the next


def table(
    rows: Sequence[Sequence[Any]], headers: Sequence[str] | None = None, *, right: Sequence[int] = (), indent: str = ""
) -> list[str]:
    """The lines of a table: each column as wide as its widest cell (header included), separated by GAP.

    `right` lists the columns aligned right (numbers); the last column is never padded, so lines carry no
    trailing spaces. Cells are shown with str(); None shows as an empty cell.
    """
    body = [[_cell(c) for c in row] for row in rows]
    lines_in = ([list(headers)] if headers is not None else []) + body
    if not lines_in:
        return []
    columns = max(len(row) for row in lines_in)
    widths = [max((len(row[i]) for row in lines_in if i < len(row)), default=0) for i in range(columns)]
    out = []
    for row in lines_in:
        cells = []
        for i, text in enumerate(row):
            last = i == len(row) - 1
            if i in right:
                cells.append(text.rjust(widths[i]))
            else:
                cells.append(text if last else text.ljust(widths[i]))
        out.append((indent + GAP.join(cells)).rstrip())
    return out


def _cell(value: Any) -> str:
    return "" if value is None else str(value)
