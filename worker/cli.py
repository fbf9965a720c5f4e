"""``headswap`` — the command line: sandbox, worker, beat, demo and operator commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="headswap", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    from worker.sandbox import cli as sandbox_cli

    sandbox_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = args.handler
    return int(handler(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
