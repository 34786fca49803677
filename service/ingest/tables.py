"""Reading tabular files (CSV, Parquet, JSON lines) for references and the offline drift check."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import TYPE_CHECKING

from service import extras

if TYPE_CHECKING:
    import pandas as pd

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl",
           ".json": "jsonl"}


class TableError(ValueError):
    """A file that cannot be read as a table; the message is one line for the user."""


class TooLarge(TableError):
    """A table of more rows or values than the caller takes."""


def sniff_format(data: bytes, content_type: str | None = None) -> str:
    content_type = (content_type or "").split(";")[0].strip().lower()
    if data[:4] == b"PAR1" or content_type in ("application/vnd.apache.parquet", "application/x-parquet"):
        return "parquet"
    if data.lstrip()[:1] in (b"{", b"[") or content_type in ("application/x-ndjson", "application/jsonl",
                                                               "application/json"):
        return "jsonl"
    return "csv"


def read_table(source: str | Path | bytes, fmt: str | None = None, label: str = "file",
               require_rows: bool = True, max_rows: int | None = None,
               max_cells: int | None = None) -> pd.DataFrame:
    """A DataFrame from a path (format from the extension, ``.gz`` allowed) or from bytes
    (format sniffed). ``label`` names the input in error messages ("reference file").

    A table of more than ``max_rows`` rows or ``max_cells`` values (rows x columns) raises
    :class:`TooLarge` without being read whole: a Parquet file's size comes from its metadata
    (a few hundred KB of Parquet can hold tens of millions of rows, gigabytes once read), CSV
    and JSON lines stop one row past ``max_rows``."""
    # pandas costs ~80 MB and ~0.5 s at import: loaded when a table is first read, not at start-up.
    import pandas as pd  # noqa: PLC0415

    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            raise TableError(f"{label} {source} is a directory, not a file")
        if not path.is_file():
            raise TableError(f"{label} not found: {source}")
        suffixes = [suffix.lower() for suffix in path.suffixes]
        compressed = bool(suffixes) and suffixes[-1] == ".gz"
        if compressed:
            suffixes = suffixes[:-1]
        fmt = fmt or FORMATS.get(suffixes[-1] if suffixes else "")
        if fmt is None:
            raise TableError(f"cannot read {label} {source}: use .csv, .parquet or .jsonl/.ndjson")
        name = f"{label} {source}"
        try:
            data = gzip.decompress(path.read_bytes()) if compressed else path.read_bytes()
        except (OSError, EOFError) as exc:  # unreadable, or not gzip / truncated
            raise TableError(f"cannot read {name}: {getattr(exc, 'strerror', None) or exc}") from None
    else:
        data, name = source, label
        fmt = fmt or sniff_format(data)
    nrows = None if max_rows is None else max_rows + 1
    try:
        if fmt == "parquet":
            extras.require("parquet", "reading Parquet")
            if max_rows is not None or max_cells is not None:
                import pyarrow.parquet as pq  # noqa: PLC0415 - as pandas does, only for Parquet

                metadata = pq.ParquetFile(io.BytesIO(data)).metadata
                _check_size(name, metadata.num_rows, metadata.num_columns, max_rows, max_cells)
            frame = pd.read_parquet(io.BytesIO(data))
        elif fmt == "jsonl":
            lines = not data.lstrip().startswith(b"[")
            frame = pd.read_json(io.BytesIO(data), lines=lines, nrows=nrows if lines else None)
        else:
            frame = pd.read_csv(io.BytesIO(data), nrows=nrows)
    except (TooLarge, extras.MissingExtra):
        raise
    except Exception as exc:  # pandas raises many types for unreadable input
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TableError(f"cannot read {name} as {fmt}: {reason}") from None
    _check_size(name, len(frame), len(frame.columns), max_rows, max_cells)
    if require_rows and frame.empty:
        raise TableError(f"{name} has no rows")
    return frame


def _check_size(name: str, rows: int, columns: int, max_rows: int | None, max_cells: int | None) -> None:
    if max_rows is not None and rows > max_rows:
        raise TooLarge(f"{name} has more than {max_rows:,} rows")
    if max_cells is not None and rows * columns > max_cells:
        raise TooLarge(f"{name} has {rows:,} rows x {columns:,} columns, more than {max_cells:,} values")
