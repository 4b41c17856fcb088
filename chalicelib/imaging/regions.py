"""The separate objects of a mask, for drawing a contact shadow under each kept object
(chalicelib/imaging/compose.py). numpy only."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def objects(mask: npt.NDArray[np.bool_]) -> list[tuple[tuple[int, int, int, int], npt.NDArray[np.bool_]]]:
    """The separate objects (8-connected regions) of a boolean mask: each one's box (x0, y0, x1,
    y1) and its own pixels inside the box. Runs of each row are joined to the runs of the row
    above they touch (union-find over runs, not pixels), so a working-resolution mask costs a few
    thousand steps; no scipy (docs/quality.md: it is not in the Lambda package)."""
    height, width = mask.shape
    padded = np.zeros((height, width + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    steps = np.diff(padded, axis=1)
    run_rows, run_starts = np.nonzero(steps == 1)
    _, run_ends = np.nonzero(steps == -1)  # the same order: row-major, one end per start
    parent = list(range(len(run_rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    previous: list[int] = []  # the runs of the row above
    row_runs: list[int] = []
    current_row = -1
    for i, (row, start, end) in enumerate(zip(run_rows.tolist(), run_starts.tolist(), run_ends.tolist(), strict=True)):
        if row != current_row:
            previous = row_runs if row == current_row + 1 else []
            row_runs, current_row = [], row
        for j in previous:  # 8-connected: a run touches one above that reaches a column beside it
            if run_starts[j] <= end and start <= run_ends[j]:
                parent[root(j)] = root(i)
        row_runs.append(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(run_rows)):
        groups.setdefault(root(i), []).append(i)
    found: list[tuple[tuple[int, int, int, int], npt.NDArray[np.bool_]]] = []
    for runs in groups.values():
        rows, starts, ends = run_rows[runs], run_starts[runs], run_ends[runs]
        x0, y0, x1, y1 = int(starts.min()), int(rows.min()), int(ends.max()), int(rows.max()) + 1
        own = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        for row, start, end in zip(rows.tolist(), starts.tolist(), ends.tolist(), strict=True):
            own[row - y0, start - x0 : end - x0] = True
        found.append(((x0, y0, x1, y1), own))
    return found
