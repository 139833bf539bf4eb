"""Where training data comes from: text files (talas.data.tables) and the Arrow-backed sources read here.

    from talas.data.columnar import open_table
    table = open_table("data/nli.parquet")               # or a .arrow file, a save_to_disk folder,
    table = open_table("org/name", split="train")        # or a dataset on the Hugging Face hub
    table.values("anchor")                               # one column as Python strings, read when asked

Detection needs only the column names, so of Parquet data only the columns the training rows use are
decoded, and Arrow files (`datasets` folders hold them) are memory-mapped, paging in only what is read.
Either way only those columns become Python strings. Row numbers in messages count data rows from 1.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from functools import cached_property

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from talas.data.tables import TEXT_SUFFIXES, Table, read_table
from talas.errors import DataError

# org/name as the hub spells dataset ids; a name ending in a known file suffix is a path, not an id.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
FILE_SUFFIXES = (*TEXT_SUFFIXES, ".gz", ".parquet", ".arrow")


class ArrowTable(Table):
    """A Table over Arrow data: columns become Python strings only when `values` (or `rows`) asks."""

    def __init__(self, path: str, columns: list[str], num_rows: int, read_column: Callable[[str], pa.ChunkedArray]):
        if num_rows == 0:
            raise DataError(f"{path}: the data has columns but no rows.")
        self.path, self.columns, self.num_rows, self.read_column = path, columns, num_rows, read_column
        self.has_bad_bytes, self.unit = False, "row"  # Arrow strings are valid UTF-8 by construction

    @classmethod
    def of(cls, path: str, arrow: pa.Table) -> ArrowTable:
        return cls(path, arrow.column_names, arrow.num_rows, arrow.column)

    def __repr__(self) -> str:
        return f"ArrowTable({self.path!r}, {self.num_rows} rows, columns {self.columns})"

    @property
    def line_numbers(self) -> range:
        return range(1, self.num_rows + 1)

    @cached_property
    def rows(self) -> list[dict[str, str | None]]:
        columns = [self.values(c) for c in self.columns]
        return [dict(zip(self.columns, row, strict=True)) for row in zip(*columns, strict=True)]

    def values(self, column: str) -> list[str | None]:
        """The column as strings: numbers and booleans in their text form, nulls as empty texts."""
        data = self.read_column(column)
        if not (pa.types.is_string(data.type) or pa.types.is_large_string(data.type)):
            try:
                data = pc.cast(data, pa.string())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise DataError(
                    f"{self.path}: column {column!r} holds {data.type} values, not texts. Pick a text column "
                    "with the column options, or convert the column to strings."
                ) from None
        return pc.fill_null(data, "").to_pylist()


def open_table(path: str, *, config: str = "", split: str = "train") -> Table:
    """The table at `path`: a file by its suffix, a `datasets` folder, or a hub dataset id (`config`, `split`)."""
    if os.path.isdir(path):
        return read_folder(path, split)
    name = path.lower()
    if name.endswith(".parquet"):
        return read_parquet(path)
    if name.endswith(".arrow"):
        return ArrowTable.of(path, read_arrow_file(path))
    if not os.path.exists(path) and HUB_ID.fullmatch(path) and not name.endswith(FILE_SUFFIXES):
        return read_hub(path, config, split)
    return read_table(path, keep_bad_bytes=True)


def read_parquet(path: str) -> ArrowTable:
    if not os.path.isfile(path):
        raise DataError(f"Data file {path!r} does not exist. Check the path (it is relative to {os.getcwd()!r}).")
    try:
        parquet = pq.ParquetFile(path, memory_map=True)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc}).") from None
    # Only the footer is read here; each column the rows use is decoded when asked, the others never.
    return ArrowTable(path, parquet.schema_arrow.names, parquet.metadata.num_rows, lambda c: parquet.read([c]).column(0))


def read_arrow_file(path: str) -> pa.Table:
    """An Arrow IPC file or stream (`datasets` writes streams), memory-mapped: no text is copied here."""
    if not os.path.isfile(path):
        raise DataError(f"Data file {path!r} does not exist. Check the path (it is relative to {os.getcwd()!r}).")
    source = pa.memory_map(path)
    try:
        try:
            return pa.ipc.open_file(source).read_all()
        except pa.ArrowInvalid:
            source.seek(0)
            return pa.ipc.open_stream(source).read_all()
    except pa.ArrowInvalid as exc:
        raise DataError(f"{path}: not a readable Arrow file ({exc}).") from None


def read_folder(path: str, split: str) -> ArrowTable:
    """A folder written by `datasets`' save_to_disk: one Dataset (state.json) or a DatasetDict (one folder per split)."""
    splits_file = os.path.join(path, "dataset_dict.json")
    if os.path.isfile(splits_file):
        with open(splits_file, encoding="utf-8") as handle:
            splits = json.load(handle).get("splits", [])
        if split not in splits:
            raise DataError(f"{path}: no split {split!r} in this dataset; its splits: {', '.join(splits)}. Pass --dataset_split SPLIT.")
        return read_folder(os.path.join(path, split), split)
    state_file = os.path.join(path, "state.json")
    if not os.path.isfile(state_file):
        raise DataError(
            f"Data path {path!r} is a folder but not a `datasets` save_to_disk folder (it has no state.json or "
            "dataset_dict.json); pass one .csv, .tsv, .jsonl, .json or .parquet file inside it."
        )
    with open(state_file, encoding="utf-8") as handle:
        files = [os.path.join(path, f["filename"]) for f in json.load(handle)["_data_files"]]
    return ArrowTable.of(path, pa.concat_tables([read_arrow_file(f) for f in files]))


def read_hub(dataset_id: str, config: str, split: str) -> ArrowTable:
    """A dataset from the Hugging Face hub (or the local `datasets` cache of one), through `datasets`."""
    import datasets  # imported only here: it takes a second, and only hub ids need it

    try:
        dataset = datasets.load_dataset(dataset_id, config or None, split=split)
    except ConnectionError:
        raise DataError(
            f"Data path {dataset_id!r} is not a local file or folder, and looks like a hub dataset id, but the "
            "Hugging Face hub could not be reached (offline, or HF_HUB_OFFLINE=1). Download it where the hub is "
            "reachable (`datasets.load_dataset(...).save_to_disk(FOLDER)`, or a .parquet/.csv file) and pass that "
            "path, or fix the network."
        ) from None
    except datasets.exceptions.DatasetNotFoundError:
        raise DataError(
            f"Data path {dataset_id!r} is neither a local file or folder nor a dataset on the Hugging Face hub "
            f"(or it is private or gated). Check the path (it is relative to {os.getcwd()!r}) or the id."
        ) from None
    except ValueError as exc:  # an unknown config or split: datasets' message lists the valid ones
        raise DataError(f"Hub dataset {dataset_id!r}: {str(exc).splitlines()[0]} Pass --dataset_config / --dataset_split.") from None
    return ArrowTable.of(dataset_id, dataset.with_format("arrow")[:])
