"""A webhook target's secrets, read from the environment once, and kept out of what is logged.

Secrets (signing secrets, tokens, passwords) are read at start and never logged, stored in
the outbox or exported as metrics: :func:`redacted_excerpt` takes them, and anything after a
credential-looking name, out of the receivers' answers before those are kept.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus

from service.config import WebhookConfig
from service.retrain.signing import secret_bytes

__all__ = ["REDACTED", "Credentials", "one_line", "redacted_excerpt", "sent_secrets"]


@dataclass
class Credentials:
    """Secrets of one target, read from the environment once."""

    secret: bytes | None = None
    bearer: str | None = None
    basic: tuple[str, str] | None = None
    header: tuple[str, str] | None = None
    trigger_token: str | None = None
    missing: list[str] = field(default_factory=list)
    plain_secret: bool = False  # a secret not in the whsec_<base64> form
    login: tuple[str, str] | None = None  # Airflow 3: username, password for <url>/auth/token
    token: str | None = None  # the token that login got; renewed when the API answers 401

    @classmethod
    def from_env(cls, config: WebhookConfig, environ: Mapping[str, str]) -> Credentials:
        creds = cls()

        def read(name: str | None) -> str | None:
            if name is None:
                return None
            value = environ.get(name)
            if not value:
                creds.missing.append(name)
            return value or None

        raw_secret = read(config.secret_env)
        creds.secret = secret_bytes(raw_secret) if raw_secret else None
        creds.plain_secret = raw_secret is not None and not raw_secret.startswith("whsec_")
        auth = config.auth
        creds.bearer = read(auth.bearer_env)
        user, password = read(auth.basic_user_env), read(auth.basic_password_env)
        creds.basic = (user, password) if user is not None and password is not None else None
        value = read(auth.header_env)
        creds.header = (auth.header, value) if auth.header and value is not None else None
        creds.trigger_token = read(config.trigger_token_env)
        username, password = read(auth.username_env), read(auth.password_env)
        creds.login = (username, password) if username is not None and password is not None else None
        return creds

    def authorization(self) -> dict[str, str]:
        """The headers that authenticate a request to the target: the token that logging in got,
        else the bearer token, else basic auth; and the custom header, if any."""
        headers: dict[str, str] = {}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        elif self.bearer is not None:
            headers["Authorization"] = f"Bearer {self.bearer}"
        elif self.basic is not None:
            token = base64.b64encode(f"{self.basic[0]}:{self.basic[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        if self.header is not None:
            headers[self.header[0]] = self.header[1]
        return headers


# A credential-looking name with its separator ("token=", "Authorization: "), or an auth scheme
# word, and the value after it.
_CREDENTIAL_AFTER = re.compile(
    r"(?i)(authorization|password|passwd|secret|api[-_]?key|token|signature|cookie)"
    r"([\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token)\s+)?)[^\s\"';&}]+"
    r"|\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]+")
REDACTED = "[redacted]"


def sent_secrets(creds: Credentials, headers: dict[str, str]) -> list[str]:
    """Every credential an attempt may send (as sent, and URL-encoded), longest first."""
    values = [creds.bearer, creds.trigger_token, creds.header[1] if creds.header else None,
              creds.basic[1] if creds.basic else None, creds.login[1] if creds.login else None, creds.token,
              headers.get("webhook-signature")]
    authorization = headers.get("Authorization")
    if authorization:
        values += [authorization, authorization.partition(" ")[2]]
    found: set[str] = set()
    for value in values:
        if value and len(value) >= 4:
            found.update((value, quote_plus(value), quote(value, safe="")))
    return sorted(found, key=len, reverse=True)


def redacted_excerpt(text: str, secrets: Iterable[str] = (), limit: int = 200) -> str:
    """``text`` with the given secrets and anything after a credential-looking name replaced,
    on one line, at most ``limit`` characters."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    text = _CREDENTIAL_AFTER.sub(lambda m: f"{m.group(1) or m.group(3)}{m.group(2) or m.group(4)}{REDACTED}", text)
    return one_line(text, limit)


def one_line(value: Any, limit: int = 300) -> str:
    """``value`` as text on one line, whitespace runs made one space, at most ``limit`` characters."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
