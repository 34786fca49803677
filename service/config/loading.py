"""Loading :class:`~service.config.settings.Settings`: the YAML file (YAML 1.2 booleans), the
``DRIFTLINE_*`` overrides, the refusal of unknown ``DRIFTLINE_*`` variables, and validation
errors turned into one message naming each key."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from service.config.fields import ConfigError
from service.config.settings import Settings

__all__ = ["TOOLING_VARIABLES", "load_settings", "named_variables"]


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

    def classes(annotation: Any) -> Iterator[type[BaseModel]]:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield annotation
        for arg in get_args(annotation):
            yield from classes(arg)

    seen: set[type] = set()
    pending: list[type[BaseModel]] = [Settings]
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
