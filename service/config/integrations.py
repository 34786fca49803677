"""The sections of the systems driftline talks to about retraining: the webhooks that start a
pipeline (``webhooks.<name>``), MLflow (``mlflow``) and Alertmanager (``alertmanager``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from service.config.fields import Duration, Strict
from service.retrain.presets import PRESETS

__all__ = ["AlertmanagerConfig", "MlflowConfig", "WebhookAuth", "WebhookConfig"]


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


