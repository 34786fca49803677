"""Reading tabular files (CSV, Parquet, JSON lines) for references and the offline drift check."""

from __future__ import annotations

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


def read_table(source: str | Path | bytes, fmt: str | None = None) -> pd.DataFrame:
    """A DataFrame from a path (format from the extension) or from bytes (format sniffed)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise TableError(f"{path}: no such file")
        fmt = fmt or FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise TableError(f"{path}: unknown format (use .csv, .parquet or .jsonl)")
        data = path.read_bytes()
        name = str(path)
    else:
        data, name = source, "body"
        fmt = fmt or sniff_format(data)
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(io.BytesIO(data))
        elif fmt == "jsonl":
            text = data.lstrip()
            frame = pd.read_json(io.BytesIO(data), lines=not text.startswith(b"["))
        else:
            frame = pd.read_csv(io.BytesIO(data))
    except Exception as exc:  # pandas raises many types for unreadable input
        raise TableError(f"{name}: cannot read as {fmt}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if frame.empty:
        raise TableError(f"{name}: no rows")
    return frame
