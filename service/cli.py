"""The ``driftline`` command line (CONTRACT §5). Each subcommand lives in service/commands/.

Only the chosen subcommand's module is imported, so ``driftline drift`` does not pay for
FastAPI and ``driftline --help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from service import __version__

# name -> (module, one-line help); a module provides add_arguments(parser) and run(args) -> int.
COMMANDS = {
    "serve": ("service.commands.serve", "run the service"),
    "demo": ("service.commands.demo", "run the service with synthetic drifting traffic and a webhook receiver"),
    "drift": ("service.commands.drift", "offline drift check of two files; a gate for CI pipelines"),
    "estimate": ("service.commands.estimate", "offline performance estimate without labels (CBPE) of two files"),
    "dashboards": ("service.commands.dashboards", "export the Grafana dashboards or push them to Grafana"),
    "produce": ("service.commands.produce", "replay a file of events into a Kafka topic"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="driftline", description="Monitoring and drift-triggered retraining "
                                     "for ML models in production.")
    parser.add_argument("--version", action="version", version=f"driftline {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    subparsers = {name: sub.add_parser(name, help=text, description=text) for name, (_, text) in COMMANDS.items()}
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    module = None
    if chosen in COMMANDS:
        module = importlib.import_module(COMMANDS[chosen][0])
        module.add_arguments(subparsers[chosen])
    args = parser.parse_args(argv)
    if module is None:  # argparse exits first on a missing or unknown command
        parser.error("a command is required")
    try:
        return module.run(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
