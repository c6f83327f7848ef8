"""The `maxim-otel-bridge` command: argument parsing and dispatch only.

Each subcommand lives in the module that owns it and exposes `add_arguments(parser)` and
`run(args) -> int`; the parser imports each of them to learn its arguments.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from . import __version__

# name -> (module, one-line help)
_COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("maxim_otel_bridge.sidecar.command", "run the sidecar: receive OTLP, spool, assemble traces, ship to Maxim"),
    "emulate": ("maxim_otel_bridge.emulator.command", "run a local Maxim-compatible API (SQLite) for tests and offline use"),
    "trace": ("maxim_otel_bridge.readback", "read traces back: `trace get ID`, `trace list`"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maxim-otel-bridge", description="OpenTelemetry traces into Maxim.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in _COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        module = importlib.import_module(module_name)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
