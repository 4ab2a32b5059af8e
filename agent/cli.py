"""Command line: ``kubelet-cert-agent {check,discover,run,demo}``.

Exit codes follow the Nagios plugin convention so ``check`` drops into any monitoring
system: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the agent itself could not run). A usage
error (unknown flag, bad value) is UNKNOWN too: argparse's own exit code 2 would read as
CRITICAL to a monitoring system.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from agent import __version__
from agent.model import Status

EPILOG = """\
exit codes (Nagios): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the agent could not run,
or the command line was wrong).
Run 'kubelet-cert-agent COMMAND --help' for the flags of each command."""

# Each module provides ``register(subparsers)``; order is the order shown by --help.
COMMAND_MODULES = (("check", "agent.check_cmd"), ("discover", "agent.discover_cmd"),
                   ("run", "agent.daemon.loop"), ("demo", "agent.demo"))


class AgentArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors exit 3 (UNKNOWN) instead of 2 (CRITICAL)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(int(Status.UNKNOWN), f"UNKNOWN: {self.prog}: error: {message}\n")


def _register_unavailable(sub: argparse._SubParsersAction[AgentArgumentParser], name: str,
                          module: str, exc: Exception) -> None:
    """Keep a command whose module cannot be imported: it then fails alone, as UNKNOWN."""
    reason = f"{type(exc).__name__}: {exc}"

    def unavailable(_args: argparse.Namespace) -> int:
        print(f"UNKNOWN: command {name!r} is unavailable ({module}: {reason})", file=sys.stderr)
        return int(Status.UNKNOWN)

    p = sub.add_parser(name, help=f"(unavailable: {reason})")
    p.set_defaults(func=unavailable)


def _chosen(argv: Sequence[str] | None) -> str | None:
    """The known command ``argv`` names (its first word that is not an option), if any."""
    word = next((a for a in argv or () if not a.startswith("-")), None)
    return word if word in dict(COMMAND_MODULES) else None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser. Subcommand modules are imported here, one by one, so that a broken
    optional part (e.g. the daemon) cannot stop ``check`` from running. When ``argv``
    names a known command only that one is imported: ``check`` does not pay for the
    daemon's imports. Otherwise (top-level --help, a usage error) every one is."""
    parser = AgentArgumentParser(
        prog="kubelet-cert-agent",
        description="Tells you, before it bites, that a kubelet certificate is wrong, "
        "stuck or about to expire.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = _chosen(argv)
    for name, module in COMMAND_MODULES:
        if chosen is not None and name != chosen:
            continue
        try:
            importlib.import_module(module).register(sub)
        except ImportError as exc:
            _register_unavailable(sub, name, module, exc)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; never lets a traceback reach the user.

    Returns the exit code (also for ``--help``, ``--version`` and usage errors, which
    argparse signals with SystemExit) so that tests can call it in-process.
    """
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return _exit_code(exit_)
    try:
        code = int(args.func(args))
    except KeyboardInterrupt:
        return int(Status.UNKNOWN)
    except Exception as exc:  # the last line of defence: UNKNOWN, not a traceback
        from agent.sinks.escape import printable

        print(printable(f"UNKNOWN: kubelet-cert-agent {args.command} failed: "
                        f"{type(exc).__name__}: {exc}"), file=sys.stderr)
        return int(Status.UNKNOWN)
    return code


def _exit_code(exit_: SystemExit) -> int:
    """The integer an argparse SystemExit carries (None means success)."""
    if exit_.code is None:
        return 0
    if isinstance(exit_.code, int):
        return exit_.code
    return int(Status.UNKNOWN)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
