"""Read text tables (CSV, TSV, JSON lines, a JSON array; each also gzip-compressed) into named columns,
with errors that name file, row and column.

    from talas.data.tables import read_table
    table = read_table("data/train/distill_texts_clean.csv")
    table.columns, table.rows[0]["text"]

Shared by the training-data readers (talas.data.examples) and the evaluation tasks (talas.eval.evaluate).
Row numbers in messages are the file's 1-based line numbers (items of a JSON array are counted instead).
Arrow-backed formats (Parquet, `datasets` folders, hub ids) are read by talas.data.columnar.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
from dataclasses import dataclass

from talas.errors import DataError

csv.field_size_limit(2**31 - 1)


@dataclass
class Table:
    path: str
    columns: list[str]
    rows: list[dict[str, str]]
    line_numbers: list[int]  # the file line each row starts on (or item number, see `unit`), for error messages
    has_bad_bytes: bool = False  # only with read_table(keep_bad_bytes=True): some value holds undecodable bytes
    unit: str = "line"  # what line_numbers count: "line" of a file, "item" of a JSON array, "row" of a table

    def values(self, column: str) -> list[str | None]:
        """The column's value in every row, None where a row lacks it (a JSON object without the key)."""
        return [row.get(column) for row in self.rows]

    def where(self, index: int) -> str:
        """The row at `index` as a message names it: "line 12"."""
        return f"{self.unit} {self.line_numbers[index]}"

    def require(self, *names: str) -> None:
        """Fail clearly when a column the caller needs is absent, listing the ones found."""
        missing = [n for n in names if n not in self.columns]
        if missing:
            raise DataError(
                f"{self.path}: missing column(s) {', '.join(map(repr, missing))}; columns found: "
                f"{', '.join(map(repr, self.columns))}. Rename the column or pass the matching column option."
            )


def decode_utf8(path: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"{path}: line {line} is not valid UTF-8 (byte {raw[exc.start]:#04x} at offset {exc.start}). "
            "Re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)."
        ) from None


# Python's surrogateescape maps each undecodable byte 0x80-0xFF to one lone surrogate U+DC80-U+DCFF.
BAD_BYTE = re.compile("[\udc80-\udcff]")


def bad_byte(value: str) -> int | None:
    """The first undecodable byte kept in `value` by read_table(keep_bad_bytes=True), or None."""
    match = BAD_BYTE.search(value)
    return ord(match.group()) - 0xDC00 if match else None


TEXT_SUFFIXES = (".csv", ".tsv", ".tab", ".txt", ".jsonl", ".json", ".ndjson")


def read_table(path: str, keep_bad_bytes: bool = False) -> Table:
    """Read a .csv, .tsv/.tab, .jsonl or .json (a JSON array, or one object per line) file, or any of them
    with .gz appended. All values are strings.

    Undecodable bytes fail the whole file, unless `keep_bad_bytes`: then they stay in the values as
    lone surrogates (see `bad_byte`), so a caller can name or skip the rows that hold them.
    """
    if not os.path.isfile(path):
        raise DataError(f"Data file {path!r} does not exist. Check the path (it is relative to {os.getcwd()!r}).")
    with open(path, "rb") as handle:
        raw = handle.read()
    name = path.lower()
    if name.endswith(".gz"):
        name = name[:-3]
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: not a readable gzip file ({exc}). Re-compress it, or pass it uncompressed.") from None
    ext = os.path.splitext(name)[1]
    if ext not in TEXT_SUFFIXES:
        raise DataError(
            f"{path}: unsupported file type {ext!r}; use .csv, .tsv, .jsonl, .json, .parquet, .arrow (each text "
            "format also as .gz), a `datasets` save_to_disk folder, or a hub dataset id (org/name)."
        )
    bad_bytes = False
    try:
        text = decode_utf8(path, raw)
    except DataError:
        if not keep_bad_bytes:
            raise
        text, bad_bytes = raw.decode("utf-8-sig", errors="surrogateescape"), True
    if ext == ".json" and text.lstrip().startswith("["):
        table = read_json_array(path, text)
    elif ext in (".jsonl", ".json", ".ndjson"):
        table = read_jsonl(path, text)
    else:
        table = read_delimited(path, text, "\t" if ext in (".tsv", ".tab") else ",")
    if not table.rows:
        raise DataError(f"{path}: the file has a header but no data rows.")
    table.has_bad_bytes = bad_bytes
    return table


def read_delimited(path: str, text: str, delimiter: str) -> Table:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path}: the file is empty.") from None
    columns = [c.strip() for c in header]
    rows, lines = [], []
    start = reader.line_num + 1
    try:
        for record in reader:
            if not record:  # blank line
                start = reader.line_num + 1
                continue
            if len(record) != len(columns):
                raise DataError(
                    f"{path}: line {start} has {len(record)} fields but the header has {len(columns)}. "
                    "Quote fields that contain the delimiter."
                )
            rows.append(dict(zip(columns, record, strict=False)))  # lengths checked above
            lines.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"{path}: line {reader.line_num}: malformed {'TSV' if delimiter == chr(9) else 'CSV'} ({exc}).") from None
    return Table(path, columns, rows, lines)


def read_jsonl(path: str, text: str) -> Table:
    records, lines = [], []
    # "\n" only: str.splitlines also splits on U+2028, U+0085 and others, which JSON allows raw inside strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: line {number} is not valid JSON ({exc.msg}).") from None
        lines.append(number)
    return object_table(path, records, lines, "line", "each line must be one object")


def read_json_array(path: str, text: str) -> Table:
    """A .json file holding one array of objects, as pandas' to_json(orient="records") and many exports write."""
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: line {exc.lineno} is not valid JSON ({exc.msg}).") from None
    return object_table(path, records, list(range(1, len(records) + 1)), "item", "the array must hold objects")


def object_table(path: str, records: list, numbers: list[int], unit: str, rule: str) -> Table:
    """Rows from JSON objects; the columns are their keys in first-seen order."""
    columns: dict[str, None] = {}  # insertion-ordered set
    rows = []
    for record, number in zip(records, numbers, strict=True):
        if not isinstance(record, dict):
            raise DataError(f"{path}: {unit} {number} is not a JSON object; {rule}.")
        columns.update(dict.fromkeys(record))
        rows.append({k: json_text(v) for k, v in record.items()})
    return Table(path, list(columns), rows, numbers, unit=unit)


def json_text(value: object) -> str:
    """JSON null and NaN are missing values (empty text), everything else its string form."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else str(value)
