"""The ``driftline`` command line (CONTRACT §5). Each subcommand lives in service/commands/."""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help); a module provides add_arguments(parser) and run(args) -> int.
COMMANDS = {
    "serve": ("service.commands.serve", "run the service"),
    "demo": ("service.commands.demo", "run the service with synthetic drifting traffic and a webhook receiver"),
    "drift": ("service.commands.drift", "offline drift check of two files; a gate for CI pipelines"),
    "dashboards": ("service.commands.dashboards", "export the Grafana dashboards or push them to Grafana"),
    "produce": ("service.commands.produce", "replay a file of events into a Kafka topic"),
}


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(prog="driftline", description="Monitoring and drift-triggered retraining "
                                     "for ML models in production.")
    from service import __version__

    parser.add_argument("--version", action="version", version=f"driftline {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {}
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        modules[name] = module
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    try:
        return modules[args.command].run(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
