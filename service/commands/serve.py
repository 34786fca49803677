"""``driftline serve``: the service, configured by a YAML file and DRIFTLINE_* variables."""

from __future__ import annotations

import argparse
import sys

from service.config import ConfigError, load_settings
from service.extras import MissingExtra


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML configuration (default: built-in defaults)")
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (default 8000)")


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"driftline: {exc}", file=sys.stderr)
        return 2
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides:
        settings = settings.model_copy(update=overrides)
    from service.server import ListenError, serve  # noqa: PLC0415 - keep `driftline --help` fast

    try:
        serve(settings, args.config)
    except (ListenError, MissingExtra, ConfigError) as exc:
        print(f"driftline: {exc}", file=sys.stderr)
        return 2
    return 0
