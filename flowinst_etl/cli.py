"""The flowinst-etl command line; ``main(argv)`` returns the process exit code."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from flowinst_etl.emulator import command as emulator_command


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="flowinst-etl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    emulator_command.configure_parser(
        commands.add_parser("emulator", help="serve the built-in EnOS API emulator")
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand and return its exit code."""
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
