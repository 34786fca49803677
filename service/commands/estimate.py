"""``driftline estimate``: a classifier's performance estimated without labels (CBPE).

    driftline estimate --reference ref.parquet --current today.csv [--json] [--chunk-size N]

The reference needs labels, scores and predictions (columns ``label``, ``score`` and
``prediction`` by default, as driftline's references have them); the current data needs
scores and predictions, and where it has labels too each chunk shows its realised metrics
next to the estimates. A multiclass classifier's scores are one column per class:
``--y-pred-proba CLASS=COLUMN,CLASS=COLUMN,...`` (three classes or more).

Prints a table of chunks (or ``--json``: ``PerformanceEstimate``'s shape) and exits 0; 1 when
a chunk alerts and ``--fail-on-alert`` is given; 2 with a one-line reason on an unreadable
file, a missing column, labels or predictions that are not 0/1 (binary) or not the classes
(multiclass), or an option out of range.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from detectors.cbpe import BINARY_METRICS
from detectors.estimate import estimate_performance
from service.commands.drift import UsageError, read_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reference", required=True, metavar="FILE",
                        help="reference data with labels, scores and predictions (CSV, Parquet, JSONL)")
    parser.add_argument("--current", required=True, metavar="FILE", help="current data (CSV, Parquet, JSONL)")
    parser.add_argument("--y-true", default="label", metavar="COLUMN", help="label column (default: label)")
    parser.add_argument("--y-pred", default="prediction", metavar="COLUMN",
                        help="predicted class column, 0 or 1 (default: prediction)")
    parser.add_argument("--y-pred-proba", default="score", metavar="COLUMN",
                        help="score column, the probability of class 1 (default: score); multiclass: "
                             "CLASS=COLUMN,... for every class")
    parser.add_argument("--metrics", default=",".join(BINARY_METRICS), metavar="A,B",
                        help=f"comma-separated metrics to estimate (default: {','.join(BINARY_METRICS)})")
    parser.add_argument("--chunk-size", type=int, metavar="N",
                        help="rows per chunk (default: each file in ten chunks)")
    parser.add_argument("--json", action="store_true", help="print the estimate as JSON")
    parser.add_argument("--fail-on-alert", action="store_true", help="exit 1 when a chunk's estimate alerts")


def _cell(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.4f}"


def format_table(result, args) -> str:
    names = list(result.thresholds)
    header = ["chunk", "rows", *names]
    rows = []
    for chunk in result.chunks:
        cells = []
        for name in names:
            metric = chunk.metrics[name]
            text = _cell(metric.value)
            if metric.realized is not None:
                text += f" ({_cell(metric.realized)})"
            cells.append(text + (" !" if metric.alert else ""))
        rows.append([f"[{chunk.start}:{chunk.end})", str(chunk.size), *cells])
    rows.append(["thresholds", "", *(f"{_cell(lower)}..{_cell(upper)}" for lower, upper in result.thresholds.values())])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    if isinstance(result.calibrated, dict):
        calibrated = [name for name, flag in result.calibrated.items() if flag]
        calibration = f"isotonic for {', '.join(calibrated)}" if calibrated else "none (scores already calibrated)"
    else:
        calibration = "isotonic" if result.calibrated else "none (scores already calibrated)"
    lines = [f"reference: {args.reference}   current: {args.current}   calibration: {calibration}", ""]
    for row in [header, *rows]:
        lines.append("  ".join(cell.ljust(width) if i < 2 else cell.rjust(width)
                               for i, (cell, width) in enumerate(zip(row, widths, strict=True))).rstrip())
    realized = any(metric.realized is not None for chunk in result.chunks for metric in chunk.metrics.values())
    alerts = ", ".join(f"{name} {count} of {len(result.chunks)}" for name, count in result.alerts.items())
    lines += ["", "estimated" + (" (realised)" if realized else "") + "; ! outside the thresholds",
              f"chunks alerting: {alerts}"]
    return "\n".join(lines)


def score_columns(text: str, reference, y_true: str) -> str | dict:
    """``--y-pred-proba``: a column name, or CLASS=COLUMN pairs whose classes are matched by
    their text to the reference's labels (so that ``1=p1`` names the integer label 1)."""
    if "=" not in text:
        return text
    labels = {str(value): value for value in reference[y_true].dropna().unique()} if y_true in reference else {}
    mapping = {}
    for pair in text.split(","):
        name, _, column = pair.partition("=")
        if not name.strip() or not column.strip():
            raise UsageError(f"--y-pred-proba: expected CLASS=COLUMN pairs, not {pair!r}")
        mapping[labels.get(name.strip(), name.strip())] = column.strip()
    return mapping


def run(args: argparse.Namespace) -> int:
    try:
        if args.chunk_size is not None and args.chunk_size <= 0:
            raise UsageError(f"--chunk-size must be positive, not {args.chunk_size}")
        metrics = [name.strip() for name in args.metrics.split(",") if name.strip()]
        unknown = [name for name in metrics if name not in BINARY_METRICS]
        if unknown or not metrics:
            raise UsageError(f"--metrics: unknown metric(s) {', '.join(unknown) or '(none given)'}; "
                             f"use any of {', '.join(BINARY_METRICS)}")
        reference = read_table(args.reference, "reference")
        current = read_table(args.current, "current")
        scores = score_columns(args.y_pred_proba, reference, args.y_true)
        try:
            result = estimate_performance(reference, current, y_true=args.y_true, y_pred=args.y_pred,
                                          y_pred_proba=scores, metrics=metrics, chunk_size=args.chunk_size)
        except ValueError as error:
            raise UsageError(str(error)) from None
    except UsageError as error:
        print(f"driftline estimate: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(format_table(result, args))
    return 1 if args.fail_on_alert and any(result.alerts.values()) else 0
