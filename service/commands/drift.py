"""``driftline drift``: offline drift check of two files, and a gate for CI pipelines.

    driftline drift --reference ref.parquet --current today.csv --fail-on-drift

Reads CSV, Parquet or JSON lines (by extension, optionally gzip-compressed), tests every
column the two files share (or ``--columns``) with Evidently's methods, prints a table (or
``--json``: the CONTRACT §5 shape plus ``not_tested`` and ``quality``) and exits 0; 1 on dataset
drift with ``--fail-on-drift``, or on a data-quality figure above its threshold with
``--fail-on-quality``; 2 with a one-line reason on a missing file, a directory, an unreadable
format, a file without rows, an unknown column, an option out of range, or nothing to test
(so a gate never passes on nothing). Columns left out of the default selection (in one file
only, text, no values) are named on stderr and in ``not_tested``.

Data quality (``detectors.quality``) is checked on the same columns, against the reference
file: per column the share missing in each file (a value that is not a number in a numerical
column counts as missing), out of the reference's range, or unseen in it; columns of the
current file that the reference lacks (new) and reference columns with no value in the
current file (absent).

With ``--segment-by COLUMN`` the same test runs per segment of the column
(:mod:`service.commands.drift_segments`): a table per segment (``--json``: key ``segments``),
and ``--fail-on-drift`` exits 1 when the dataset drifts as a whole or in any segment.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from detectors.frames import count_series, untested_reason
from detectors.profile import NUMERICAL, ReferenceProfile, drift_report
from detectors.quality import CHECKS, QualityReport, quality_report
from detectors.stattests import METHODS
from service.commands.drift_segments import drifted_segments, format_segments, segment_reports
from service.extras import MissingExtra
from service.ingest import tables


class UsageError(Exception):
    """A problem with the inputs, reported in one line with exit code 2."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reference", required=True, metavar="FILE", help="reference data (CSV, Parquet, JSONL)")
    parser.add_argument("--current", required=True, metavar="FILE", help="current data (CSV, Parquet, JSONL)")
    parser.add_argument("--columns", metavar="A,B", help="comma-separated columns to test (default: all shared)")
    parser.add_argument("--method", default="auto", choices=["auto", *METHODS],
                        help="drift test for every column (default: auto, Evidently's choice per column)")
    parser.add_argument("--threshold", type=float, help="threshold for every column (default: the method's own)")
    parser.add_argument("--drift-share", type=float, default=0.5, metavar="SHARE",
                        help="dataset drift when at least this share of columns drift (default: 0.5)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--segment-by", metavar="COLUMN",
                        help="also test each segment of this column (its most frequent values in the reference)")
    parser.add_argument("--max-segments", type=int, default=20, metavar="N",
                        help="with --segment-by: values given a segment of their own, the rest pooled as "
                             "__other__ (default: 20)")
    parser.add_argument("--fail-on-drift", action="store_true",
                        help="exit 1 when the dataset drifts (with --segment-by: or any segment)")
    parser.add_argument("--fail-on-quality", action="store_true",
                        help="exit 1 when a data-quality figure exceeds its threshold (--max-*)")
    parser.add_argument("--max-missing-increase", type=float, default=0.1, metavar="SHARE",
                        help="data quality: largest rise of a column's missing share over the reference's "
                             "(default: 0.1)")
    parser.add_argument("--max-out-of-range", type=float, default=0.05, metavar="SHARE",
                        help="data quality: largest share of a numerical column's values outside the "
                             "reference's [min, max] (default: 0.05)")
    parser.add_argument("--max-unseen", type=float, default=0.05, metavar="SHARE",
                        help="data quality: largest share of a categorical column's values the reference "
                             "never had (default: 0.05)")


def read_table(path_text: str, role: str):
    try:
        return tables.read_table(path_text, label=f"{role} file")
    except (tables.TableError, MissingExtra) as error:
        raise UsageError(str(error)) from None


def choose_columns(reference, current, requested: str | None) -> list[str] | None:
    """The columns named by ``--columns`` (each must exist in both files), or None: every
    shared column that Evidently's DataDriftPreset would test."""
    if requested:
        names = [name.strip() for name in requested.split(",") if name.strip()]
        for frame, role in ((reference, "reference"), (current, "current")):
            absent = [name for name in names if name not in frame.columns]
            if absent:
                raise UsageError(f"unknown column(s) in {role} data: {', '.join(absent)}")
        return names
    if not any(name in reference.columns for name in current.columns):
        raise UsageError(f"the reference and current data share no column (reference: "
                         f"{', '.join(map(str, reference.columns))}; current: {', '.join(map(str, current.columns))})")
    return None


def format_table(report, reference_rows: int, current_rows: int, args, quality: str = "") -> str:
    """The drift table, then ``quality`` (lines), then the verdict: the last line stays the verdict."""
    rows = [("feature", "type", "method", "score", "threshold", "drift", "missing")]
    for name, feature in report.features.items():
        rows.append((name, feature.type, feature.method, f"{feature.score:.4g}", f"{feature.threshold:g}",
                     "DRIFT" if feature.drift else "-", str(feature.missing)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"reference: {args.reference} ({reference_rows} rows)   current: {args.current} ({current_rows} rows)", ""]
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].ljust(widths[2]),
                 row[3].rjust(widths[3]), row[4].rjust(widths[4]), row[5].center(widths[5]), row[6].rjust(widths[6])]
        lines.append("  ".join(cells).rstrip())
    if quality:
        lines += ["", quality]
    verdict = "DETECTED" if report.dataset_drift else "not detected"
    lines += ["", f"dataset drift {verdict}: {report.drifted_features} of {report.features_total} features drifted "
                  f"(share {report.drift_share:.2f}, threshold {args.drift_share:g})"]
    return "\n".join(lines)


def quality_of(reference, current, columns: list[str] | None) -> QualityReport:
    """Data quality of the current file against the reference, on the columns drift tests
    (``columns``, or every column of the reference with a type)."""
    import pandas as pd  # noqa: PLC0415  (pandas loads with the first file read, not with the CLI)

    profile = ReferenceProfile.from_dataframe(reference, columns=columns)
    window = {}
    for name, kind in profile.types.items():
        if name in current.columns:
            series = current[name]
            # A value that is not a number in a numerical column is missing, as in the service.
            window[name] = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan) \
                if kind == NUMERICAL else count_series(series)
    return quality_report(profile, window, seen=[str(name) for name in current.columns
                                                 if name not in reference.columns])


def quality_thresholds(args: argparse.Namespace) -> dict[str, float]:
    thresholds = {check: getattr(args, f"max_{check}") for check in CHECKS}
    for check, value in thresholds.items():
        if not 0.0 <= value <= 1.0:
            raise UsageError(f"--max-{check.replace('_', '-')} must be between 0 and 1, not {value:g}")
    return thresholds


def quality_dict(report: QualityReport, thresholds: dict[str, float]) -> dict:
    """The ``quality`` key of ``--json``: the shape of GET /v1/models/{model}/quality."""
    return {**report.to_dict(), "thresholds": thresholds,
            "breaches": [{"feature": feature, "check": check, "value": value}
                         for feature, check, value in report.breaches(**thresholds)]}


def format_quality(report: QualityReport, thresholds: dict[str, float]) -> str:
    def share(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    rows = [("feature", "missing", "ref missing", "out of range", "unseen")]
    rows += [(name, share(f.missing), share(f.reference_missing), share(f.out_of_range), share(f.unseen))
             for name, f in report.features.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["data quality:"]
    for row in rows:
        cells = (cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))
        lines.append("  ".join([row[0].ljust(widths[0]), *cells]))
    lines.append(f"new columns: {', '.join(report.new) or '-'}   absent columns: {', '.join(report.absent) or '-'}")
    breaches = report.breaches(**thresholds)
    lines.append(f"data quality: {len(breaches)} figure(s) above the thresholds"
                 + "".join(f"\n  {feature}: {check} {value:.3f} > {thresholds[check]:g}"
                           for feature, check, value in breaches))
    return "\n".join(lines)


def check_threshold(threshold: float, method_names) -> None:
    for name in sorted(set(method_names)):
        try:
            METHODS[name].check_threshold(threshold)
        except ValueError as error:
            raise UsageError(f"--threshold: {error}") from None


def has_values(series) -> bool:
    """Whether a column holds anything the tests use (missing values and +/-inf are dropped)."""
    if series.dtype.kind == "f":
        return bool(np.isfinite(series.to_numpy()).any())
    return bool(series.notna().any())


def run(args: argparse.Namespace) -> int:
    try:
        if not 0.0 < args.drift_share <= 1.0:
            raise UsageError(f"--drift-share must be between 0 and 1 (0 excluded), not {args.drift_share:g}")
        if args.threshold is not None and args.method != "auto":
            check_threshold(args.threshold, [args.method])
        thresholds = quality_thresholds(args)
        if args.max_segments < 1:
            raise UsageError(f"--max-segments must be at least 1, not {args.max_segments}")
        reference = read_table(args.reference, "reference")
        current = read_table(args.current, "current")
        columns = choose_columns(reference, current, args.columns)
        segment_by = args.segment_by
        if segment_by is not None:
            absent = [role for role, frame in (("reference", reference), ("current", current))
                      if segment_by not in frame.columns]
            if absent:
                raise UsageError(f"--segment-by: no column {segment_by!r} in the {' and '.join(absent)} data")
            reference_rows, current_rows = reference[segment_by], current[segment_by]
        try:
            quality = quality_of(reference, current, columns)
        except ValueError as error:
            raise UsageError(str(error)) from None
        not_tested: dict[str, str] = {}
        if columns is None:
            shared = [name for name in current.columns if name in reference.columns]
            not_tested.update({str(name): "only in the reference file" for name in reference.columns
                               if name not in current.columns})
            not_tested.update({str(name): "only in the current file" for name in current.columns
                               if name not in reference.columns})
            reference, current = reference[shared], current[shared]
        try:
            report = drift_report(reference, current, columns=columns, method=args.method,
                                  threshold=args.threshold, drift_share=args.drift_share)
        except ValueError as error:
            raise UsageError(str(error)) from None
        if columns is None:
            not_tested.update({str(name): untested_reason(current[name]) for name in shared
                               if name not in report.features})
        if not report.features:
            reasons = "; ".join(f"{name}: {reason}" for name, reason in not_tested.items())
            raise UsageError(f"no column left to test ({reasons})")
        if args.threshold is not None and args.method == "auto":
            check_threshold(args.threshold, (feature.method for feature in report.features.values()))
        if not any(has_values(reference[name]) and has_values(current[name]) for name in report.features):
            raise UsageError("no column has values in both files: every tested column is empty in one of them")
        segments = None
        if segment_by is not None:
            segments = segment_reports(reference.assign(**{segment_by: reference_rows}),
                                       current.assign(**{segment_by: current_rows}), segment_by,
                                       list(report.features), args.max_segments, method=args.method,
                                       threshold=args.threshold, drift_share=args.drift_share)
    except UsageError as error:
        print(f"driftline drift: {error}", file=sys.stderr)
        return 2
    for name, reason in not_tested.items():
        print(f"driftline drift: column {name!r} not tested: {reason}", file=sys.stderr)
    if args.json:
        body = {**report.to_dict(), "not_tested": not_tested, "quality": quality_dict(quality, thresholds)}
        if segments is not None:
            body["segments"] = segments
        print(json.dumps(body, indent=2))
    else:
        sections = format_quality(quality, thresholds)
        if segments is not None:
            sections += "\n\n" + format_segments(segments)
        print(format_table(report, len(reference), len(current), args, sections))
    failed_quality = args.fail_on_quality and bool(quality.breaches(**thresholds))
    drifted = report.dataset_drift or (segments is not None and bool(drifted_segments(segments)))
    return 1 if (args.fail_on_drift and drifted) or failed_quality else 0
