"""How both programs print data: aligned tables, CSV, JSON (an array or lines) and YAML.

Pure text in, text out (or written to a stream given): what a row holds is the command's
business, how rows are laid out is decided here once.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from typing import IO, Any, Literal

Document = Literal["json", "yaml"]


def table(rows: Sequence[Sequence[str]], *, gap: int = 2) -> str:
    """Rows (the header first) as left-aligned columns `gap` spaces apart, like kubectl's
    tabwriter; trailing blanks are trimmed from every line."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    separator = " " * gap
    lines = [
        separator.join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return "\n".join(lines) + "\n"


def document(value: Any, form: Document) -> str:
    """One object as kubectl prints it with `-o json` (four-space indent) or `-o yaml`."""
    if form == "json":
        return json.dumps(value, indent=4, ensure_ascii=False) + "\n"
    import yaml  # only the client's -o yaml needs it

    text: str = yaml.safe_dump(value, sort_keys=False, allow_unicode=True)
    return text


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP, CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula, made inert with a leading `'`.

    Audit records carry text that users typed (reasons, commands, tickets); opening an export
    must never run it. Numbers stay numbers.
    """
    if isinstance(cell, str) and cell.startswith(_FORMULA_STARTS):
        return "'" + cell
    return cell


def write_csv(out: IO[str], header: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """A header line and one line per row, every text cell spreadsheet-safe; returns how many
    rows were written."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    count = 0
    for row in rows:
        writer.writerow([spreadsheet_safe(cell) for cell in row])
        count += 1
    return count


def write_json_array(out: IO[str], items: Iterable[str]) -> int:
    """Already serialised JSON values as one array, an item a line; returns the count."""
    count = 0
    out.write("[")
    for item in items:
        out.write(("," if count else "") + "\n" + item)
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def write_json_lines(out: IO[str], items: Iterable[str]) -> int:
    """Already serialised JSON values as JSON Lines; returns the count."""
    count = 0
    for item in items:
        out.write(item + "\n")
        count += 1
    return count
