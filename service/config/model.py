"""A model's section (``models.<name>``): its reference, window, drift tests, labels, quality
checks, performance estimation, segments and retraining triggers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from detectors.cbpe import BINARY_METRICS, checked_configuration
from detectors.quality import CHECKS
from detectors.stattests import METHODS
from service.config.fields import Duration, Strict

__all__ = ["AUTOMATIC_REASONS", "DriftConfig", "EstimatedMetric", "EstimationConfig", "LabelsConfig", "ModelConfig",
           "PerformanceRule", "QualityConfig", "ReferenceConfig", "StattestName", "TriggerReason", "TriggersConfig",
           "WindowConfig"]


class ReferenceConfig(Strict):
    """Where a model's reference data comes from: exactly one of the three."""

    first_n: int | None = Field(None, ge=10)
    path: str | None = None
    mlflow: str | None = Field(None, description="models:/name/version or runs:/run_id/path")

    @model_validator(mode="after")
    def _exactly_one(self) -> ReferenceConfig:
        chosen = [k for k in ("first_n", "path", "mlflow") if getattr(self, k) is not None]
        if not chosen:
            self.first_n = 1000
        elif len(chosen) > 1:
            raise ValueError(f"choose one of first_n, path, mlflow (got {', '.join(chosen)})")
        return self


class WindowConfig(Strict):
    """The current window: the last ``size`` predictions, re-evaluated every ``step`` new ones."""

    size: int = Field(1000, ge=10)
    step: int = Field(100, ge=1)
    max_age: Duration | None = Field(None, description="also drop predictions older than this")


# "auto" and the drift methods of detectors.stattests.METHODS, the one list of them.
StattestName = Literal[("auto", *METHODS)]  # type: ignore[valid-type]


class DriftConfig(Strict):
    method: StattestName = "auto"
    threshold: float | None = None
    drift_share: float = Field(0.5, gt=0, le=1)
    per_feature: dict[str, StattestName] = Field(default_factory=dict)
    features: list[str] | None = Field(None, description="only these features (default: all seen)")


class LabelsConfig(Strict):
    window: int = Field(1000, ge=10, description="joined labels the performance figures are computed over")
    ttl: Duration = 7 * 86400.0
    max_pending: int = Field(100_000, ge=100, description="predictions kept waiting for their label")
    positive_class: str | int | bool = 1


# The signals a model's ``triggers.on`` may name (each evaluated by service.retrain.triggers); the
# trigger reasons are these and the two raised from outside, ``alert`` and ``manual``.
AUTOMATIC_REASONS = ("data_drift", "prediction_drift", "performance_drop", "concept_drift", "data_quality",
                     "estimated_performance_drop")
TriggerReason = Literal[AUTOMATIC_REASONS]  # type: ignore[valid-type]


class PerformanceRule(Strict):
    metric: Literal["accuracy", "precision", "recall", "f1", "roc_auc", "mae", "rmse"] = "accuracy"
    # Below this (above, for error metrics mae/rmse) counts as a drop.
    threshold: float = 0.8
    # A verdict on fewer joined labels than this is no verdict: the signal stays off.
    min_labels: int = Field(100, ge=1)


class TriggersConfig(Strict):
    """When a model's retraining pipeline is started (see docs/triggers.md)."""

    # Signals that count; [] turns automatic triggers off (manual and alert ones still work).
    on: list[TriggerReason] = Field(default_factory=lambda: ["data_drift", "performance_drop"])
    # Evaluations in a row with the signal on before a trigger (concept_drift fires at once).
    consecutive_windows: int = Field(3, ge=1)
    # After any trigger of the model, automatic and alert triggers wait this long.
    cooldown: Duration = 3600.0
    # Target under ``webhooks``; None = the only configured webhook, if there is exactly one.
    webhook: str | None = None
    performance: PerformanceRule = Field(default_factory=PerformanceRule)


class QualityConfig(Strict):
    """Data quality of each window against the reference (see detectors.quality): its figures,
    and the thresholds of the ``data_quality`` trigger signal, on when any feature exceeds one."""

    enabled: bool = True
    # Rise of a feature's missing share over the reference's.
    missing_increase: float = Field(0.1, ge=0, le=1)
    # Share of a numerical feature's present values outside the reference's [min, max].
    out_of_range: float = Field(0.05, ge=0, le=1)
    # Share of a categorical feature's present values the reference never had.
    unseen: float = Field(0.05, ge=0, le=1)

    def thresholds(self) -> dict[str, float]:
        """The thresholds by check (detectors.quality.CHECKS), as QualityReport.breaches takes them."""
        return {check: getattr(self, check) for check in CHECKS}


EstimatedMetric = Literal[BINARY_METRICS]  # type: ignore[valid-type]


class EstimationConfig(Strict):
    """Performance estimated without labels (CBPE, see docs/estimation.md): fitted once on a
    reference with ``label``, ``score`` and ``prediction`` columns, applied to every window."""

    method: Literal["cbpe"] = "cbpe"
    metrics: list[EstimatedMetric] = Field(default_factory=lambda: ["roc_auc", "accuracy", "f1"], min_length=1)
    # Rows per reference chunk, whose realised metrics give the alert thresholds; None: the
    # model's window.size, so that the thresholds speak of chunks as large as a window.
    chunk: int | None = Field(None, ge=10)
    # Constant alert thresholds (lower, upper) per metric, either may be null; the other
    # metrics get the reference chunks' mean +/- 3 standard deviations.
    thresholds: dict[EstimatedMetric, tuple[float | None, float | None]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> EstimationConfig:
        checked_configuration(self.metrics, BINARY_METRICS, self.chunk, self.thresholds)
        return self


class ModelConfig(Strict):
    task: Literal["auto", "classification", "regression"] = "auto"
    reference: ReferenceConfig = Field(default_factory=ReferenceConfig)
    window: WindowConfig = Field(default_factory=WindowConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    labels: LabelsConfig = Field(default_factory=LabelsConfig)
    triggers: TriggersConfig = Field(default_factory=TriggersConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    # Absent: no estimation.
    estimation: EstimationConfig | None = None
    # Features to slice by (service.core.segments): drift and performance per value of each.
    segments: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct_segments(self) -> ModelConfig:
        if len(set(self.segments)) != len(self.segments):
            raise ValueError("segments names a feature twice")
        return self


