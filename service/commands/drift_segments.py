"""``driftline drift --segment-by COLUMN``: the drift check per segment of the two files.

As in the service (``service.core.segments``): the reference file's ``--max-segments`` most
frequent values of the column get a segment each, every other value (and a missing one) falls
in ``__other__``; each segment's rows of the current file are tested against its rows of the
reference file, on the tested columns but the segment column, as Evidently's DataDriftPreset
would test those rows alone.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from detectors import drift_report

__all__ = ["OTHER", "format_segments", "segment_reports"]

OTHER = "__other__"


def segment_names(reference: pd.Series, current: pd.Series, max_segments: int) -> tuple[pd.Series, pd.Series]:
    """Each row's segment name in either file."""
    kept: list[str] = []
    for value in reference.dropna().astype(str).value_counts(sort=True).index:
        if value != OTHER:
            kept.append(value)
        if len(kept) == max_segments:
            break

    def name(series: pd.Series) -> pd.Series:
        text = series.astype(str).where(series.notna(), OTHER)
        return text.where(text.isin(kept), OTHER)

    return name(reference), name(current)


def segment_reports(reference: pd.DataFrame, current: pd.DataFrame, column: str, tested: list[str],
                    max_segments: int, **options: Any) -> dict[str, Any]:
    """Per segment: its rows in each file and its drift report (the CONTRACT §5 shape), or
    ``not_tested`` with the reason. ``options`` go to ``drift_report``."""
    reference_names, current_names = segment_names(reference[column], current[column], max_segments)
    columns = [name for name in tested if name != column]
    segments: dict[str, Any] = {}
    for segment in sorted(set(reference_names) | set(current_names), key=lambda name: (name == OTHER, name)):
        ref, cur = reference[reference_names == segment], current[current_names == segment]
        entry: dict[str, Any] = {"reference_rows": len(ref), "current_rows": len(cur)}
        if not columns:
            entry["not_tested"] = "no column but the segment column"
        elif len(ref) == 0 or len(cur) == 0:
            entry["not_tested"] = f"no rows in the {'reference' if len(ref) == 0 else 'current'} file"
        else:
            try:
                entry.update(drift_report(ref, cur, columns=columns, **options).to_dict())
            except ValueError as error:
                entry["not_tested"] = str(error)
        segments[segment] = entry
    return {"segment_by": column, "max_segments": max_segments, "segments": segments}


def format_segments(result: dict[str, Any]) -> str:
    rows = [("segment", "ref rows", "cur rows", "drifted", "share", "dataset drift")]
    for name, entry in result["segments"].items():
        if "not_tested" in entry:
            rows.append((name, str(entry["reference_rows"]), str(entry["current_rows"]), "-", "-",
                         f"not tested: {entry['not_tested']}"))
        else:
            rows.append((name, str(entry["reference_rows"]), str(entry["current_rows"]),
                         f"{entry['drifted_features']}/{entry['features_total']}", f"{entry['drift_share']:.2f}",
                         "DETECTED" if entry["dataset_drift"] else "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [f"segments by {result['segment_by']}:"]
    for row in rows:
        counts = (cell.rjust(width) for cell, width in zip(row[1:5], widths[1:], strict=True))
        cells = [row[0].ljust(widths[0]), *counts, row[5]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def drifted_segments(result: dict[str, Any]) -> list[str]:
    return [name for name, entry in result["segments"].items() if entry.get("dataset_drift")]
