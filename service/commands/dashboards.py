"""``driftline dashboards export DIR`` and ``driftline dashboards push --url URL``.

``push`` uses grafana-client. Credentials come from the environment, never from the command
line: ``GRAFANA_TOKEN`` (service-account token, sent as ``Authorization: Bearer``) or
``GRAFANA_USER`` and ``GRAFANA_PASSWORD`` (basic auth). Secrets are never printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from service import extras
from service.observability import dashboards as D

DEFAULT_FOLDER = "driftline"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dashboards_command", metavar="{export,push}")
    sub.required = True
    exp = sub.add_parser("export", help="write the dashboards as JSON files into DIR",
                         description="Write the Grafana dashboards as JSON into DIR, for file "
                                     "provisioning or the Helm chart's dashboard sidecar.")
    exp.add_argument("directory", metavar="DIR")
    push = sub.add_parser(
        "push", help="create or update the dashboards in a Grafana",
        description="Create or update the dashboards through Grafana's HTTP API. "
                    "Credentials: GRAFANA_TOKEN, or GRAFANA_USER and GRAFANA_PASSWORD.")
    push.add_argument("--url", default=None,
                      help="Grafana base URL, e.g. http://grafana:3000 (default: $GRAFANA_URL)")
    push.add_argument("--folder", default=DEFAULT_FOLDER,
                      help="folder title, created when missing; '' or 'General' for none "
                           f"(default: {DEFAULT_FOLDER})")
    push.add_argument("--overwrite", action="store_true",
                      help="replace dashboards with the same uid even if changed in Grafana")
    push.add_argument("--timeout", type=float, default=10.0, help="HTTP timeout in seconds")


def run(args: argparse.Namespace) -> int:
    if args.dashboards_command == "export":
        for path in D.export(args.directory):
            print(path)
        return 0
    if args.dashboards_command == "push":
        url = args.url or os.environ.get("GRAFANA_URL", "")
        return push(url, folder=args.folder, overwrite=args.overwrite,
                    timeout=getattr(args, "timeout", 10.0))
    print(f"unknown dashboards command {args.dashboards_command!r}", file=sys.stderr)
    return 2


def redact(url: str) -> str:
    """The URL without any user:password part, for messages."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        parts = parts._replace(netloc=host)
    return urlunsplit(parts)


def _credential() -> Any:
    token = os.environ.get("GRAFANA_TOKEN")
    if token:
        return token
    user, password = os.environ.get("GRAFANA_USER"), os.environ.get("GRAFANA_PASSWORD")
    if user and password is not None:
        return (user, password)
    return None  # anonymous, or user:password in the URL


def _folder_uid(api: Any, title: str) -> str | None:
    if not title or title.lower() == "general":
        return None
    for folder in api.folder.get_all_folders() or []:
        if folder.get("title") == title:
            return folder["uid"]
    created = api.folder.create_folder(title)
    print(f"created folder {title!r} (uid {created['uid']})")
    return created["uid"]


def push(url: str, folder: str = DEFAULT_FOLDER, overwrite: bool = False,
         timeout: float = 10.0) -> int:
    """Create or update every dashboard; returns the exit code."""
    if not extras.available("grafana"):
        print(f"driftline: {extras.MissingExtra('grafana', 'driftline dashboards push')}", file=sys.stderr)
        return 2
    # The grafana extra, imported only once known to be installed.
    from grafana_client import GrafanaApi  # noqa: PLC0415
    from grafana_client.client import GrafanaClientError, GrafanaException  # noqa: PLC0415

    if not url:
        print("error: no Grafana URL (--url or GRAFANA_URL)", file=sys.stderr)
        return 2
    where = redact(url)
    api = GrafanaApi.from_url(url, credential=_credential(), timeout=timeout)
    try:
        api.connect()
        folder_uid = _folder_uid(api, folder)
    except GrafanaException as exc:
        print(f"error: Grafana at {where}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # connection refused, DNS, TLS: niquests' own exceptions
        print(f"error: cannot reach Grafana at {where}: {type(exc).__name__}", file=sys.stderr)
        return 1

    failed = 0
    for model in D.all_dashboards().values():
        body: dict[str, Any] = {"dashboard": model, "overwrite": overwrite,
                                "message": "driftline dashboards push"}
        if folder_uid is not None:
            body["folderUid"] = folder_uid
        try:
            result = api.dashboard.update_dashboard(body)
        except GrafanaClientError as exc:
            failed += 1
            if exc.status_code == 412:
                print(f"error: {model['title']} ({model['uid']}) already exists and differs; "
                      "use --overwrite to replace it", file=sys.stderr)
            else:
                print(f"error: {model['title']}: {exc}", file=sys.stderr)
            continue
        except GrafanaException as exc:
            failed += 1
            print(f"error: {model['title']}: {exc}", file=sys.stderr)
            continue
        print(f"pushed {model['title']} -> {where.rstrip('/')}{result.get('url', '')} "
              f"(version {result.get('version', '?')})")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point: ``python -m service.commands.dashboards export DIR``."""
    parser = argparse.ArgumentParser(prog="driftline dashboards", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
