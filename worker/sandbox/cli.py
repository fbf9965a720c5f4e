"""``headswap sandbox`` (and ``python -m worker.sandbox``): run the Akool API emulator.

Secrets may come from the environment instead of flags (flags are visible in ``ps``):
``HEADSWAP_SANDBOX_API_KEY``, ``HEADSWAP_SANDBOX_CLIENT_ID``,
``HEADSWAP_SANDBOX_CLIENT_SECRET``. Secrets are never printed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from worker.sandbox.auth import CredentialError, Credentials
from worker.sandbox.knobs import SPECS, KnobError, Knobs, KnobSpec

BOOLEAN_KNOBS = ("webhooks", "require_analysis")
DESCRIPTION = (
    "Run the Akool Open API emulator (head swap v4) as an HTTP server. "
    "Knob flags set the startup configuration; POST /_sandbox/config changes it "
    "at run time. See docs/SANDBOX.md."
)


def _knob_type(spec: KnobSpec) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return spec.parse_text(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = spec.name
    return parse


def _add_knob_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("knobs (also settable via POST /_sandbox/config)")
    for spec in SPECS.values():
        flag = "--" + spec.name.replace("_", "-")
        if spec.name in BOOLEAN_KNOBS:
            group.add_argument(
                flag,
                dest=f"knob_{spec.name}",
                default=None,
                action=argparse.BooleanOptionalAction,
                help=spec.help,
            )
        else:
            group.add_argument(
                flag,
                dest=f"knob_{spec.name}",
                default=None,
                type=_knob_type(spec),
                metavar="VALUE",
                help=spec.help,
            )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every sandbox flag to ``parser``."""
    env = os.environ.get
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one")
    parser.add_argument(
        "--api-key",
        default=env("HEADSWAP_SANDBOX_API_KEY"),
        help="the x-api-key clients must send (env HEADSWAP_SANDBOX_API_KEY)",
    )
    parser.add_argument(
        "--client-id",
        default=env("HEADSWAP_SANDBOX_CLIENT_ID"),
        help="16-byte clientId: getToken id and webhook AES IV",
    )
    parser.add_argument(
        "--client-secret",
        default=env("HEADSWAP_SANDBOX_CLIENT_SECRET"),
        help="16/24/32-byte clientSecret: webhook AES key",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault/timing RNG")
    parser.add_argument(
        "--public-url",
        default=None,
        help="base URL put in output/preview links (default http://HOST:PORT)",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")
    _add_knob_flags(parser)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``sandbox`` subcommand on ``headswap``'s subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sandbox", help="run the Akool API emulator", description=DESCRIPTION
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)
    return parser


def knobs_from_args(args: argparse.Namespace) -> Knobs:
    """The startup knobs: defaults overridden by the knob flags that were given."""
    changes = {name: getattr(args, f"knob_{name}", None) for name in SPECS}
    return Knobs().updated({k: v for k, v in changes.items() if v is not None})


def credentials_from_args(args: argparse.Namespace) -> Credentials:
    """Credentials from flags/env, validated (raises :class:`CredentialError`)."""
    creds = Credentials(
        api_key=args.api_key or "",
        client_id=args.client_id or None,
        client_secret=args.client_secret or None,
    )
    creds.validate()
    return creds


def run(args: argparse.Namespace) -> int:
    """Start the sandbox and serve until SIGTERM/SIGINT. Returns the exit status."""
    from worker.sandbox.engine import Engine
    from worker.sandbox.server import serve

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    try:
        creds = credentials_from_args(args)
        knobs = knobs_from_args(args)
    except (CredentialError, KnobError) as exc:
        print(f"headswap sandbox: error: {exc}", file=sys.stderr)
        return 2
    warning = creds.webhook_warning()
    if warning:
        print(f"headswap sandbox: warning: {warning}", file=sys.stderr, flush=True)
    engine = Engine(creds, knobs, seed=args.seed)
    try:
        return serve(engine, args.host, args.port, args.public_url, args.access_log)
    except OSError as exc:
        print(
            f"headswap sandbox: error: cannot listen on {args.host}:{args.port}: "
            f"{exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m worker.sandbox``."""
    parser = argparse.ArgumentParser(prog="python -m worker.sandbox", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))
