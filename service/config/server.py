"""The HTTP server's sections: bearer tokens (``auth``), connection bounds (``server``) and the
bounds on what arrives (``limits``)."""

from __future__ import annotations

from pydantic import Field

from service.config.fields import Duration, Strict

__all__ = ["AuthConfig", "LimitsConfig", "ServerConfig"]


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


