"""Evidently's HTML data drift report, for the API and for MLflow evidence runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas arrives with the frames (see service/ingest/tables.py)
    import pandas as pd


class ReportError(ValueError):
    """The data cannot make a report (no column with values on both sides); the message says why."""


def evidently_html(reference: pd.DataFrame, current: pd.DataFrame) -> str:
    """Evidently's ``DataDriftPreset`` report of ``reference`` against ``current``, as one HTML page,
    over the columns that have values on both sides (Evidently refuses empty columns)."""
    from evidently import Report  # noqa: PLC0415 - evidently takes seconds to import
    from evidently.presets import DataDriftPreset  # noqa: PLC0415

    columns = [name for name in reference.columns
               if name in current.columns and reference[name].notna().any() and current[name].notna().any()]
    if not columns:
        raise ReportError("no column has values in both the reference and the current window")
    try:
        snapshot = Report([DataDriftPreset()]).run(reference_data=reference[columns], current_data=current[columns])
    except (ValueError, ZeroDivisionError) as exc:
        raise ReportError(f"Evidently cannot report on this data: {exc}") from None
    return snapshot.get_html_str(as_iframe=False)
