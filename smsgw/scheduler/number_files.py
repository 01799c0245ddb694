"""Files of phone numbers, one a line in the first column: a CSV or TXT file (the delimiter sniffed) or the first
sheet of an Excel workbook (.xlsx). `smsgw dnc import` reads the register this way and the portal a customer's
send list, so both accept the same files and report the same lines as invalid.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final

from smsgw.numbers import InvalidNumber, check_country_code, normalise_number

_SNIFF_OCTETS: Final = 64 * 1024
_DELIMITERS: Final = ",;\t"  # what spreadsheets export as "CSV" in different locales
_ZIP_MAGIC: Final = b"PK\x03\x04"  # an .xlsx is a zip container; a CSV never starts so


@contextlib.contextmanager
def read_number_file(
    file: BinaryIO, default_country_code: str = ""
) -> Iterator[Iterator[tuple[int, str | InvalidLine]]]:
    """The numbers of `file` (seekable, binary), normalised, as they are read, each with its 1-based line (row);
    a line that is not a number comes as an InvalidLine. Blank lines, `#` comments and a header (a first line
    without digits) are skipped. InvalidNumber for a bad `default_country_code`, before any line."""
    check_country_code(default_country_code)
    is_xlsx = file.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC
    file.seek(0)
    if is_xlsx:
        import openpyxl  # only for workbooks: it is slow to import

        workbook = openpyxl.load_workbook(file, read_only=True, data_only=True)
        try:
            rows = workbook.worksheets[0].iter_rows(max_col=1, values_only=True)
            yield numbered_cells(((i, cell_text(row[0] if row else None)) for i, row in enumerate(rows, 1)),
                                 default_country_code)
        finally:
            workbook.close()
        return
    # A stray byte in a note column (a cp1252 export) must not stop the reading; in the number column it makes
    # that line invalid like any other non-digit.
    text = io.TextIOWrapper(file, encoding="utf-8-sig", errors="replace", newline="")
    try:
        try:
            dialect: type[csv.Dialect] = csv.Sniffer().sniff(text.read(_SNIFF_OCTETS), _DELIMITERS)
        except csv.Error:  # one column: no delimiter to find
            dialect = csv.excel
        text.seek(0)
        reader = csv.reader(text, dialect)
        yield numbered_cells(((reader.line_num, row[0] if row else "") for row in reader), default_country_code)
    finally:
        text.detach()  # the caller owns `file`


def cell_text(value: object) -> str:
    """A spreadsheet cell as text: Excel keeps numbers typed in as numbers (447700900001.0)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


@dataclass(frozen=True, slots=True)
class InvalidLine:
    line: int  # 1-based
    raw: str
    reason: str


def numbered_cells(
    cells: Iterable[tuple[int, str]], default_country_code: str = ""
) -> Iterator[tuple[int, str | InvalidLine]]:
    """First-column cells with their line numbers -> each number normalised with its line (the portal reports
    repeated and refused numbers by line), or an InvalidLine. Blank cells, `#` comments and a header (a first line
    without digits) are skipped."""
    for line, cell in cells:
        raw = cell.strip()
        if not raw or raw.startswith("#"):
            continue
        if line == 1 and not any(char.isdigit() for char in raw):
            continue
        try:
            yield line, normalise_number(raw, default_country_code)
        except InvalidNumber as exc:
            yield line, InvalidLine(line, raw, exc.reason)
