"""Command line: ``kubelet-cert-agent {check,run,demo}``.

Exit codes follow the Nagios plugin convention so ``check`` drops into any monitoring
system: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the agent itself could not run).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agent import __version__
from agent.model import Status

EPILOG = """\
exit codes (Nagios): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the agent could not run).
Run 'kubelet-cert-agent COMMAND --help' for the flags of each command."""


def build_parser() -> argparse.ArgumentParser:
    # Imported here so that ``--version`` and ``--help`` stay cheap and so that a broken
    # optional part (e.g. the daemon) cannot stop ``check`` from running.
    from agent import check_cmd, daemon, demo

    parser = argparse.ArgumentParser(
        prog="kubelet-cert-agent",
        description="Tells you, before it bites, that a kubelet certificate is wrong, "
        "stuck or about to expire.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check_cmd.register(sub)
    daemon.register(sub)
    demo.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; never lets a traceback reach the user."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args))
    except KeyboardInterrupt:
        return int(Status.UNKNOWN)
    except Exception as exc:  # the last line of defence: UNKNOWN, not a traceback
        print(f"UNKNOWN: kubelet-cert-agent {args.command} failed: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return int(Status.UNKNOWN)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
