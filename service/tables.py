"""Reading tabular files (CSV, Parquet, JSON lines) for references and the offline drift check."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pandas as pd

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl",
           ".json": "jsonl"}


class TableError(ValueError):
    """A file that cannot be read as a table; the message is one line for the user."""


def sniff_format(data: bytes, content_type: str | None = None) -> str:
    content_type = (content_type or "").split(";")[0].strip().lower()
    if data[:4] == b"PAR1" or content_type in ("application/vnd.apache.parquet", "application/x-parquet"):
        return "parquet"
    if data.lstrip()[:1] in (b"{", b"[") or content_type in ("application/x-ndjson", "application/jsonl",
                                                               "application/json"):
        return "jsonl"
    return "csv"


def read_table(source: str | Path | bytes, fmt: str | None = None, label: str = "file",
               require_rows: bool = True) -> pd.DataFrame:
    """A DataFrame from a path (format from the extension, ``.gz`` allowed) or from bytes
    (format sniffed). ``label`` names the input in error messages ("reference file")."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise TableError(f"{label} not found: {source}")
        suffixes = [suffix.lower() for suffix in path.suffixes]
        compressed = bool(suffixes) and suffixes[-1] == ".gz"
        if compressed:
            suffixes = suffixes[:-1]
        fmt = fmt or FORMATS.get(suffixes[-1] if suffixes else "")
        if fmt is None:
            raise TableError(f"cannot read {label} {source}: use .csv, .parquet or .jsonl/.ndjson")
        data = gzip.decompress(path.read_bytes()) if compressed else path.read_bytes()
        name = f"{label} {source}"
    else:
        data, name = source, "body"
        fmt = fmt or sniff_format(data)
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(io.BytesIO(data))
        elif fmt == "jsonl":
            frame = pd.read_json(io.BytesIO(data), lines=not data.lstrip().startswith(b"["))
        else:
            frame = pd.read_csv(io.BytesIO(data))
    except Exception as exc:  # pandas raises many types for unreadable input
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TableError(f"cannot read {name} as {fmt}: {reason}") from None
    if require_rows and frame.empty:
        raise TableError(f"{name} has no rows")
    return frame
