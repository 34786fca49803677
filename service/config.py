"""driftline's configuration: one typed model, loaded from YAML and ``DRIFTLINE_*`` variables.

Every key may be overridden by an environment variable named ``DRIFTLINE_`` plus the key
path joined by ``__`` (``DRIFTLINE_KAFKA__BOOTSTRAP_SERVERS=broker:9092``); values are
read as YAML scalars, so ``DRIFTLINE_LIMITS__MAX_MODELS=50`` is an int. A wrong key or
value raises :class:`ConfigError` naming the key, and start-up stops.

``models.default`` applies to every model; a named model's section is merged over it key
by key, so ``fraud: {window: {size: 5000}}`` keeps the default ``step``.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from detectors.cbpe import BINARY_METRICS, checked_configuration
from detectors.quality import CHECKS
from detectors.stattests import METHODS
from service.retrain.presets import PRESETS

log = logging.getLogger("driftline.config")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


class ConfigError(ValueError):
    """A configuration problem; the message names the offending key."""


def parse_duration(value: Any) -> float:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"7d"`` or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration such as 30s, 15m, 1h or 7d")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration such as 30s, 15m, 1h or 7d")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class AuthConfig(Strict):
    """Bearer tokens per route class (see docs/security.md). With no token at all every route is
    open, which start-up allows only on a loopback address unless ``allow_unauthenticated``."""

    # Names of environment variables holding the tokens: secrets stay out of config files.
    token_env: str = "DRIFTLINE_TOKEN"
    ingest_token_env: str = "DRIFTLINE_INGEST_TOKEN"
    # Reports (raw feature values) and the trigger list; the admin token is accepted too.
    read_token_env: str = "DRIFTLINE_READ_TOKEN"
    # Serve a non-loopback address with no admin token (e.g. behind an authenticating proxy).
    allow_unauthenticated: bool = False


class ServerConfig(Strict):
    """HTTP server bounds: slow or too many clients are cut off instead of holding the service."""

    # Connections plus requests in progress above which new requests get HTTP 503.
    limit_concurrency: int = Field(512, ge=1)
    # An idle keep-alive connection is closed after this long.
    timeout_keep_alive: Duration = 5.0
    # A request head (request line and headers) must arrive within this long of the connection
    # opening (or of the previous response), else the connection is closed.
    header_timeout: Duration = Field(10.0, gt=0)
    # A request body must arrive within this long of its head, else HTTP 408.
    body_timeout: Duration = Field(60.0, gt=0)
    # Largest request head (request line and headers); a longer one closes the connection.
    max_header_bytes: int = Field(16 * 1024, ge=1024)
    # A model's Evidently report is served from cache for this long; one report renders at a time.
    report_cache_ttl: Duration = 30.0


class LimitsConfig(Strict):
    """Bounds that keep memory and the Prometheus label set finite whatever arrives."""

    max_models: int = Field(1000, ge=1)
    max_features: int = Field(500, ge=1)
    max_instances: int = Field(200, ge=1)
    max_model_versions: int = Field(20, ge=1)
    max_infra_event_kinds: int = Field(50, ge=1)
    max_categories: int = Field(1000, ge=2, description="distinct values kept per categorical feature")
    max_vocabulary_bytes: int = Field(256 * 1024, ge=1024,
                                      description="UTF-8 bytes of the distinct strings kept per categorical feature")
    # A first-N reference closes early, with the rows it has, when their strings reach this.
    max_first_n_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    # A reference (upload, file, MLflow data set) of more rows, or of more values (rows x
    # columns), is refused before it is read whole: Parquet compresses a repeated value to
    # almost nothing, and each value costs tens of bytes while a reference is built.
    max_reference_rows: int = Field(1_000_000, ge=10)
    max_reference_cells: int = Field(20_000_000, ge=10)
    max_event_bytes: int = Field(1024 * 1024, ge=256)
    # Values of a segment feature (models.<m>.segments) given a segment of their own: the most
    # frequent in the reference; the others are pooled as __other__.
    max_segments: int = Field(20, ge=1)


class CloudEventsConfig(Strict):
    """KServe/Seldon inference-logger CloudEvents: how long and how much a request (or response)
    waits for its other half, over HTTP and Kafka alike."""

    ttl: Duration = 30.0
    max_pending: int = Field(10_000, ge=10)
    # Bodies are kept as received; 48 MiB keeps a partition's pending halves within one
    # changelog record (service.kafka.admin.MAX_STATE_BYTES).
    max_pending_bytes: int = Field(32 * 1024 * 1024, ge=64 * 1024, le=48 * 1024 * 1024)


class KafkaConfig(Strict):
    # The client library (service.kafka.clients): kafka-python (core) or confluent-kafka
    # (librdkafka, the kafka-confluent extra; several times less CPU per record).
    client: Literal["kafka-python", "confluent"] = "kafka-python"
    bootstrap_servers: str = "127.0.0.1:9092"
    topics: list[str] = Field(default_factory=lambda: ["model-events"], min_length=1)
    group_id: str = "driftline"
    dead_letter_topic: str | None = "driftline-dead-letters"
    trigger_topic: str | None = "driftline-triggers"
    # Compacted changelog of per-model state, restored when partitions are assigned.
    state_topic: str | None = "driftline-state"
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    max_poll_records: int = Field(5000, ge=1)
    poll_timeout: Duration = 0.5
    # With state_topic: how often per-model state goes to the changelog, after which the
    # input offsets are committed (a crash replays at most this much input; see docs/kafka.md).
    checkpoint_interval: Duration = 10.0
    # A replica that stops heartbeating loses its partitions after this long.
    session_timeout: Duration = 10.0
    # How often driftline_consumer_lag_messages and readiness are refreshed.
    lag_interval: Duration = 2.0
    client_id: str = "driftline"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username_env: str | None = None
    sasl_password_env: str | None = None
    ssl_cafile: str | None = None


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


class WebhookAuth(Strict):
    """Credentials of the target API, each read from the environment variable named here."""

    bearer_env: str | None = None
    basic_user_env: str | None = None
    basic_password_env: str | None = None
    header: str | None = Field(None, description="custom header name, value from header_env")
    header_env: str | None = None
    # airflow preset, Airflow 3: log in at <url>/auth/token and renew the token when it expires
    # (Airflow 3's API tokens last 24 h by default, so a static bearer_env token stops working).
    username_env: str | None = None
    password_env: str | None = None

    @model_validator(mode="after")
    def _pairs(self) -> WebhookAuth:
        if (self.basic_user_env is None) != (self.basic_password_env is None):
            raise ValueError("basic_user_env and basic_password_env go together")
        if (self.username_env is None) != (self.password_env is None):
            raise ValueError("username_env and password_env go together")
        if self.username_env is not None and (self.bearer_env is not None or self.basic_user_env is not None):
            raise ValueError("username_env/password_env (log in for a token) replace bearer_env and basic auth")
        if (self.header is None) != (self.header_env is None):
            raise ValueError("header and header_env go together")
        return self


# The preset names, from their one registry (each preset also says which keys it needs there):
# a Literal pydantic validates and publishes as an enum; to a type checker, which cannot read
# a registry, a str.
if TYPE_CHECKING:
    PresetName = str
else:
    PresetName = Literal[tuple(PRESETS)]


class WebhookConfig(Strict):
    preset: PresetName = "generic"
    # generic: the full URL; other presets: the API's base URL (https://api.github.com, ...).
    url: str = Field(pattern=r"^https?://")
    # Standard Webhooks secret: "whsec_<base64>" or any other string (used as raw bytes).
    secret_env: str | None = "DRIFTLINE_WEBHOOK_SECRET"
    auth: WebhookAuth = Field(default_factory=WebhookAuth)
    timeout: Duration = 10.0
    max_attempts: int = Field(8, ge=1)
    backoff_initial: Duration = 1.0
    backoff_max: Duration = 300.0
    # Preset parameters; each preset documents which it needs.
    dag_id: str | None = None
    airflow_api: Literal["v1", "v2"] = "v2"
    repository: str | None = Field(None, description="github: owner/repo")
    workflow: str | None = Field(None, description="github: workflow file name or id")
    ref: str | None = "main"
    project_id: str | None = Field(None, description="gitlab: numeric id or group/project")
    trigger_token_env: str | None = Field(None, description="gitlab: pipeline trigger token; jenkins: build token")
    job: str | None = Field(None, description="jenkins: job name, folder/job for folders")
    pipeline_id: str | None = None
    pipeline_version_id: str | None = None
    experiment_id: str | None = None
    namespace: str | None = None
    workflow_template: str | None = None

    @model_validator(mode="after")
    def _preset_parameters(self) -> WebhookConfig:
        missing = [key for key in PRESETS[self.preset].requires if not getattr(self, key)]
        if missing:
            raise ValueError(f"preset {self.preset} needs {', '.join(missing)}")
        if self.auth.username_env is not None and (self.preset != "airflow" or self.airflow_api != "v2"):
            raise ValueError("auth.username_env/password_env log in at Airflow 3's /auth/token: preset airflow "
                             "with airflow_api v2 only (Airflow 2: basic_user_env/basic_password_env)")
        if self.backoff_max < self.backoff_initial:
            raise ValueError("backoff_max must be at least backoff_initial")
        return self


class MlflowConfig(Strict):
    # None: the MLFLOW_TRACKING_URI environment variable, if set.
    tracking_uri: str | None = None
    # On each trigger, log the evidence as a run in experiment "<experiment_prefix><model>".
    log_evidence: bool = True
    experiment_prefix: str = "driftline/"
    # Tag the registered model version the reference came from with driftline.drift=true.
    tag_versions: bool = True
    # Artifact path (directory or file) of the reference data set in the model version's source run.
    reference_artifact: str = Field("reference", description="artifact path of the reference data set in a run")


class AlertmanagerConfig(Strict):
    # Firing alerts carrying this label=value become retraining triggers.
    action_label: str = "driftline_action"
    action_value: str = "retrain"
    model_label: str = "model"
    # Alerts remembered for deduplication (by fingerprint and startsAt).
    dedup_size: int = Field(10000, ge=10)
    # Alerts in one notification; a larger one is refused (413).
    max_alerts: int = Field(1000, ge=1)


_RENAMED_CLOUDEVENTS_KEYS = ("ttl", "max_pending")


class Settings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    state_dir: Path = Path("./driftline-state")
    checkpoint_interval: Duration = 30.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    auth: AuthConfig = Field(default_factory=AuthConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    kafka: KafkaConfig | None = None
    cloudevents: CloudEventsConfig = Field(default_factory=CloudEventsConfig)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    webhooks: dict[str, WebhookConfig] = Field(default_factory=dict)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    alertmanager: AlertmanagerConfig = Field(default_factory=AlertmanagerConfig)

    @model_validator(mode="before")
    @classmethod
    def _renamed_cloudevents_keys(cls, data: Any) -> Any:
        """``kafka.cloudevents_ttl`` and ``kafka.cloudevents_max_pending`` (the keys before the
        ``cloudevents`` section served HTTP too) still work, with a warning, where the new key
        is not set."""
        kafka = data.get("kafka") if isinstance(data, dict) else None
        if not isinstance(kafka, dict) or not any(f"cloudevents_{key}" in kafka for key in _RENAMED_CLOUDEVENTS_KEYS):
            return data
        kafka, cloudevents = dict(kafka), data.get("cloudevents") or {}
        cloudevents = dict(cloudevents) if isinstance(cloudevents, dict) else cloudevents
        for key in _RENAMED_CLOUDEVENTS_KEYS:
            if f"cloudevents_{key}" in kafka:
                value = kafka.pop(f"cloudevents_{key}")
                log.warning("kafka.cloudevents_%s is deprecated: use cloudevents.%s", key, key)
                if isinstance(cloudevents, dict):
                    cloudevents.setdefault(key, value)
        return {**data, "kafka": kafka, "cloudevents": cloudevents}

    @model_validator(mode="before")
    @classmethod
    def _merge_model_defaults(cls, data: Any) -> Any:
        """Named models inherit every key of ``models.default`` they do not set."""
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
            return data
        models = data["models"]
        default = models.get("default") or {}
        if not isinstance(default, dict):
            return data
        merged = {"default": default}
        for name, section in models.items():
            if name != "default":
                merged[name] = _deep_merge(default, section) if isinstance(section, dict) else section
        return {**data, "models": merged}

    @model_validator(mode="after")
    def _webhooks_exist(self) -> Settings:
        for name, model in self.models.items():
            hook = model.triggers.webhook
            if hook is not None and hook not in self.webhooks:
                raise ValueError(f"models.{name}.triggers.webhook: no webhook named {hook!r} under webhooks")
        return self

    def model(self, name: str) -> ModelConfig:
        """The effective configuration of model ``name``."""
        return self.models.get(name) or self.models.get("default") or _DEFAULT_MODEL


_DEFAULT_MODEL = ModelConfig()


def _deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            # A reference names exactly one source: an override replaces it whole.
            out[key] = value if key == "reference" else _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class _Yaml12Loader(yaml.SafeLoader):
    """YAML with 1.2 booleans: only true/false. In YAML 1.1 ``on``/``off``/``yes``/``no`` are
    booleans, so ``triggers: {on: [data_drift]}`` would get the key ``True``."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                    list("tTfF"))


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Yaml12Loader)


# DRIFTLINE_* variables of driftline's build and test scripts (scripts/test.sh, tests/decoding.py),
# not of the service; a shell that ran the test suite still has them set.
TOOLING_VARIABLES = frozenset({"DRIFTLINE_NATIVE_REQUIRED", "DRIFTLINE_LATEST", "DRIFTLINE_CORE_PYTHON"})


def _env_overrides(environ: dict[str, str]) -> list[tuple[list[str], Any]]:
    top_level = set(Settings.model_fields)
    overrides = []
    for name, raw in environ.items():
        if not name.startswith("DRIFTLINE_"):
            continue
        path = [part.lower() for part in name[len("DRIFTLINE_"):].split("__")]
        # DRIFTLINE_TOKEN and friends hold secrets, not configuration keys (see _unknown_variables).
        if path[0] not in top_level:
            continue
        overrides.append((path, _yaml(raw) if raw.strip() else None))
    return sorted(overrides, key=lambda item: len(item[0]))


def named_variables(settings: Settings) -> set[str]:
    """Environment variables the configuration reads by name: every ``*_env`` key's value as
    configured, and its default in every section (DRIFTLINE_WEBHOOK_SECRET is read by any
    webhook added later, and deployments set it before they configure one)."""
    names: set[str] = set()

    def classes(annotation: Any):
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield annotation
        for arg in get_args(annotation):
            yield from classes(arg)

    seen: set[type] = set()
    pending = [Settings]
    while pending:
        cls = pending.pop()
        if cls in seen:
            continue
        seen.add(cls)
        for field_name, field in cls.model_fields.items():
            if field_name.endswith("_env") and isinstance(field.default, str):
                names.add(field.default)
            pending.extend(classes(field.annotation))

    def configured(node: Any) -> None:
        if isinstance(node, BaseModel):
            for field_name in type(node).model_fields:
                value = getattr(node, field_name)
                if field_name.endswith("_env") and isinstance(value, str):
                    names.add(value)
                configured(value)
        elif isinstance(node, dict):
            for value in node.values():
                configured(value)

    configured(settings)
    return names


def _unknown_variables(settings: Settings, environ: dict[str, str]) -> list[str]:
    """``DRIFTLINE_*`` variables that are neither a configuration key nor read by name: most
    often a key with a single underscore where ``__`` was meant (DRIFTLINE_KAFKA_BOOTSTRAP_SERVERS)."""
    top_level = set(Settings.model_fields)
    known = named_variables(settings) | TOOLING_VARIABLES
    return sorted(name for name in environ if name.startswith("DRIFTLINE_") and name not in known
                  and name[len("DRIFTLINE_"):].split("__")[0].lower() not in top_level)


# Kubernetes gives every pod variables for each Service of its namespace ("service links"):
# a Service named driftline-prod yields DRIFTLINE_PROD_SERVICE_HOST, DRIFTLINE_PROD_PORT=tcp://...,
# DRIFTLINE_PROD_PORT_8000_TCP_ADDR and so on, and one named driftline yields DRIFTLINE_PORT.
_SERVICE_LINK = re.compile(r"[A-Z0-9_]+_(?:SERVICE_HOST|SERVICE_PORT(?:_[A-Z0-9_]+)?"
                           r"|PORT_\d+_(?:TCP|UDP|SCTP)(?:_PROTO|_PORT|_ADDR)?)")
_SERVICE_LINK_URL = re.compile(r"(?:tcp|udp|sctp)://")


def _is_service_link(name: str, value: str) -> bool:
    """Whether a variable is one of Kubernetes' service links, not driftline's configuration."""
    if "__" in name:  # a key path: service names have no "__"
        return False
    return _SERVICE_LINK.fullmatch(name) is not None or (
        name.endswith("_PORT") and _SERVICE_LINK_URL.match(value) is not None)


def load_settings(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read the YAML file (optional), apply ``DRIFTLINE_*`` overrides and validate."""
    environ = {name: value for name, value in (os.environ if environ is None else environ).items()
               if not _is_service_link(name, value)}
    data: dict[str, Any] = {}
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
        try:
            loaded = _yaml(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path}: the top level must be a mapping of keys")
        data = loaded or {}
    for keys, value in _env_overrides(environ):
        node = data
        for key in keys[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[keys[-1]] = value
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    unknown = _unknown_variables(settings, environ)
    if unknown:
        raise ConfigError("invalid configuration: " + "; ".join(
            f"{name}: unknown variable (a key is DRIFTLINE_ + its path joined by __, e.g. "
            f"DRIFTLINE_KAFKA__BOOTSTRAP_SERVERS; top-level keys: {', '.join(Settings.model_fields)})"
            for name in unknown))
    return settings


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{key}: {message}")
    return "invalid configuration: " + "; ".join(lines)
