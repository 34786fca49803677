"""Grafana's dashboard model, built from code: panels (time series, stat, table, state timeline,
heatmap), their Prometheus targets, template variables, annotations, and :class:`Layout`, which
places panels on Grafana's 24-column grid; driftline's dashboards (:mod:`.dashboards`) are written
with these.

The JSON is meant for Grafana file provisioning and for the Grafana Helm chart's
dashboard sidecar, so every panel uses the ``datasource`` template variable
(``{"type": "prometheus", "uid": "${datasource}"}``) rather than an import-time
``${DS_PROMETHEUS}`` input, which only works in the import dialog.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

__all__ = ["DS", "SCHEMA_VERSION", "TAGS", "Layout", "dashboard", "heatmap", "new_in_window", "prom_annotation",
           "queries", "query_var", "render", "stat", "state_timeline", "table", "target", "timeseries"]

DS: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
TAGS = ["driftline"]
SCHEMA_VERSION = 39


class Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping rows."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1
        self.panels: list[dict[str, Any]] = []

    def add(self, panel: dict[str, Any], w: int = 12, h: int = 8) -> None:
        if self.x + w > 24:
            self.newline()
        panel["id"] = self.next_id
        self.next_id += 1
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        self.panels.append(panel)

    def newline(self) -> None:
        if self.x:
            self.y += self.row_h
        self.x = 0
        self.row_h = 0

    def row(self, title: str) -> None:
        self.newline()
        self.panels.append({
            "type": "row", "title": title, "collapsed": False, "panels": [],
            "id": self.next_id, "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
        })
        self.next_id += 1
        self.y += 1


def target(expr: str, legend: str = "__auto", ref: str = "A", *, instant: bool = False,
           fmt: str = "time_series") -> dict[str, Any]:
    t: dict[str, Any] = {
        "datasource": DS,
        "refId": ref,
        "expr": expr,
        "legendFormat": legend,
        "range": not instant,
        "instant": instant,
        "format": fmt,
        "editorMode": "code",
    }
    return t


def queries(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    """A panel's range targets from (PromQL, legend) pairs, with refIds A, B, C, ..."""
    return [target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(pairs)]


def timeseries(title: str, targets: list[dict[str, Any]], unit: str = "short", *,
               description: str = "", min_: float | None = None, max_: float | None = None,
               stack: bool = False, bars: bool = False,
               thresholds: list[tuple[float | None, str]] | None = None) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "unit": unit,
        "custom": {
            "drawStyle": "bars" if bars else "line",
            "lineWidth": 1,
            "fillOpacity": 80 if bars else 10,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        },
        "thresholds": _thresholds(thresholds),
    }
    if thresholds:
        defaults["custom"]["thresholdsStyle"] = {"mode": "dashed"}
    if min_ is not None:
        defaults["min"] = min_
    if max_ is not None:
        defaults["max"] = max_
    return {
        "type": "timeseries", "title": title, "description": description, "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "showLegend": True,
                       "calcs": ["lastNotNull", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(title: str, targets: list[dict[str, Any]], unit: str = "short", *,
         description: str = "", thresholds: list[tuple[float | None, str]] | None = None,
         mappings: list[dict[str, Any]] | None = None, text_mode: str = "auto") -> dict[str, Any]:
    return {
        "type": "stat", "title": title, "description": description, "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit, "thresholds": _thresholds(thresholds),
                                     "mappings": mappings or [],
                                     "color": {"mode": "thresholds"}},
                        "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "background", "graphMode": "area", "textMode": text_mode,
                    "justifyMode": "auto", "orientation": "auto"},
    }


def table(title: str, targets: list[dict[str, Any]], unit: str = "short", *,
          description: str = "", exclude: Iterable[str] = ("Time", "__name__", "job"),
          rename: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "type": "table", "title": title, "description": description, "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit, "thresholds": _thresholds(None)},
                        "overrides": []},
        "options": {"showHeader": True, "cellHeight": "sm",
                    "footer": {"show": False, "reducer": ["sum"], "fields": ""}},
        "transformations": [
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {
                "excludeByName": {name: True for name in exclude},
                "renameByName": rename or {},
            }},
        ],
    }


def state_timeline(title: str, targets: list[dict[str, Any]], *, description: str = "",
                   mappings: list[dict[str, Any]] | None = None,
                   thresholds: list[tuple[float | None, str]] | None = None) -> dict[str, Any]:
    return {
        "type": "state-timeline", "title": title, "description": description, "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": "short", "mappings": mappings or [],
                                     "thresholds": _thresholds(thresholds),
                                     "color": {"mode": "thresholds"},
                                     "custom": {"fillOpacity": 80, "lineWidth": 0}},
                        "overrides": []},
        "options": {"showValue": "never", "mergeValues": True, "rowHeight": 0.9,
                    "alignValue": "left", "legend": {"showLegend": True, "displayMode": "list",
                                                     "placement": "bottom"},
                    "tooltip": {"mode": "single", "sort": "none"}},
    }


def heatmap(title: str, targets: list[dict[str, Any]], unit: str = "short", *,
            description: str = "") -> dict[str, Any]:
    """A heatmap of one row per series (here: per feature), coloured by its value."""
    return {
        "type": "heatmap", "title": title, "description": description, "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {
            "calculate": False,
            "cellGap": 1,
            "color": {"mode": "scheme", "scheme": "Oranges", "scale": "linear",
                      "exponent": 0.5, "steps": 64, "fill": "dark-orange", "reverse": False},
            "rowsFrame": {"layout": "auto"},
            "yAxis": {"axisPlacement": "left", "unit": "short"},
            "cellValues": {"unit": unit},
            "tooltip": {"show": True, "yHistogram": False},
            "legend": {"show": True},
            "exemplars": {"color": "rgba(255,0,255,0.7)"},
        },
    }


def _thresholds(steps: list[tuple[float | None, str]] | None) -> dict[str, Any]:
    steps = steps or [(None, "green")]
    return {"mode": "absolute",
            "steps": [{"value": value, "color": color} for value, color in steps]}


def _datasource_var() -> dict[str, Any]:
    return {
        "type": "datasource", "name": "datasource", "label": "Data source",
        "query": "prometheus", "regex": "", "hide": 0, "refresh": 1,
        "current": {}, "options": [], "includeAll": False, "multi": False,
    }


def query_var(name: str, query: str, label: str, *, multi: bool = True) -> dict[str, Any]:
    """A Prometheus ``label_values(...)`` template variable (multi-select with All)."""
    return {
        "type": "query", "name": name, "label": label, "datasource": DS,
        # the plain-string form: understood by every Grafana version (newer ones migrate it)
        "query": query,
        "definition": query,
        "refresh": 2,  # on time range change
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
        "allValue": ".*" if multi else None,
        "current": {},
        "options": [],
        "hide": 0,
        "regex": "",
    }


def dashboard(uid: str, title: str, description: str, layout: Layout,
              variables: list[dict[str, Any]], annotations: list[dict[str, Any]] | None = None,
              links: bool = True) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": TAGS,
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "id": None,
        "links": [{"type": "dashboards", "tags": TAGS, "asDropdown": True, "title": "driftline",
                   "includeVars": True, "keepTime": True, "icon": "external link",
                   "targetBlank": False, "tooltip": "", "url": ""}] if links else [],
        "templating": {"list": [_datasource_var(), *variables]},
        "annotations": {"list": [_builtin_annotation(), *(annotations or [])]},
        "panels": layout.panels,
    }


def _builtin_annotation() -> dict[str, Any]:
    return {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}


def new_in_window(counter: str, selector: str, by: str, window: str = "2m") -> str:
    """Counter increments in the last ``window``, including a series' first appearance.

    ``increase()`` needs two samples, so a counter child that appears already at 1 (the first
    retraining trigger of a model, say) would never show; the ``unless ... offset`` branch
    counts such new series with their whole value.
    """
    series = f"{counter}{{{selector}}}"
    return (f"sum by ({by}) (increase({series}[{window}])) > 0"
            f" or sum by ({by}) ({series} unless {series} offset {window})")


def prom_annotation(name: str, expr: str, title: str, text: str, tags: str,
                    color: str) -> dict[str, Any]:
    return {"name": name, "datasource": DS, "enable": True, "hide": False, "iconColor": color,
            "expr": expr, "step": "60s", "titleFormat": title, "textFormat": text,
            "tagKeys": tags, "useValueForTime": False}


def render(model: dict[str, Any]) -> str:
    """A dashboard model as the JSON committed under ``dashboards/``."""
    return json.dumps(model, indent=2, sort_keys=True) + "\n"
