"""Evidently's HTML data drift report, for the API and for MLflow evidence runs."""

from __future__ import annotations

import pandas as pd


def evidently_html(reference: pd.DataFrame, current: pd.DataFrame) -> str:
    """Evidently's ``DataDriftPreset`` report of ``reference`` against ``current``, as one HTML page."""
    from evidently import Report  # noqa: PLC0415 - evidently takes seconds to import
    from evidently.presets import DataDriftPreset  # noqa: PLC0415

    snapshot = Report([DataDriftPreset()]).run(reference_data=reference, current_data=current)
    return snapshot.get_html_str(as_iframe=False)
