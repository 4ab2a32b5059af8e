"""``kubelet-cert-agent check``: one evaluation, printed, as a Nagios plugin.

Reads the cert dir (and, unless ``--offline``, asks the API server once), judges the
snapshot at ``--at`` (default: now) and prints a table or the JSON status. The exit
code is the verdict: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from agent import clock as clockmod
from agent import codes, config
from agent.clock import Clock
from agent.config import SourceSettings
from agent.model import ApiState, Evaluation, KubeletSettings, ProbeResult, Snapshot, Status

# The kubelet's swap leaves -current.pem missing for microseconds (remove, then rename):
# a check that lands in that gap looks again rather than report a missing certificate.
SWAP_GAP_RETRIES = 5
SWAP_GAP_PAUSE_SECONDS = 0.1

DESCRIPTION = """\
Check this node's kubelet certificates once and print the verdict.

What is checked: the client and serving certificates in --cert-dir
(kubelet-{client,server}-current.pem and their symlinks), the self-signed
fallback kubelet.crt, tlsCertFile and clientCAFile from the kubelet config,
every --watch file and every --ca-file: expiry, the 70-90 % rotation window,
self-signed serving certificates, key/certificate match, identity
(CN=system:node:<node>, SANs), trust, history of rotations; unless --offline,
this node's kubelet-serving CSRs on the API server (pending, denied, not issued).
On a kubeadm control plane (--kubeadm-dir, default /etc/kubernetes when pki/ca.crt
exists) also everything `kubeadm certs check-expiration` lists, in its layout.
Unless --no-probe, one TLS handshake with the kubelet's serving port (--kubelet-endpoint)
compares what it serves with the file it should serve."""

EPILOG = """\
exit codes (Nagios):
  0 OK        nothing to do
  1 WARNING   act this week (e.g. rotation overdue, self-signed serving cert)
  2 CRITICAL  act now (e.g. expired or nearly expired, broken symlink)
  3 UNKNOWN   the check could not run (bad flags, e.g. an unparseable --at), or
              there is no kubelet on this host (KUBELET_NOT_FOUND: pass --host-root,
              or --cert-dir/--kubelet-config/--node-name)

the kubelet is discovered (see 'kubelet-cert-agent discover --help'): the running
process, else its systemd unit, else the kubelet's defaults; --cert-dir,
--kubelet-config, --node-name and --kubeconfig override what is discovered.

--at TIME judges the certificates as they are now, at another instant:
  ISO 8601 ("2027-01-15", "2027-01-15T10:00:00Z", "2027-01-15T10:00:00+02:00";
  no offset = UTC) or relative to now ("+30d", "+12h", "+90m", "+2w", "-1d").

examples:
  kubelet-cert-agent check
  kubelet-cert-agent check --offline --at +45d        # what breaks before the change freeze?
  kubelet-cert-agent check --format json | jq .findings
  kubelet-cert-agent check --cert-dir /etc/kubernetes/cert --ca-file /etc/kubernetes/pki/ca.crt

finding codes (README, section Findings, says what to do about each):
""" + "\n".join(f"  {code:<{max(map(len, codes.ALL)) + 2}}{codes.DESCRIPTIONS[code]}"
            for code in sorted(codes.ALL))

_RELATIVE = re.compile(r"^([+-])(\d+(?:\.\d+)?)([wdhms])$")
_MAX_OFFSET = timedelta(days=100 * 365)  # beyond that a date overflows or means a typo
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


@dataclass(frozen=True)
class At:
    """A parsed ``--at``: an absolute instant, or an offset from the time of the check."""

    instant: datetime | None = None
    offset: timedelta | None = None

    def resolve(self, now: datetime) -> datetime:
        """The instant to judge at, given the real current time."""
        if self.instant is not None:
            return self.instant
        return now + (self.offset or timedelta())


def parse_at(text: str) -> At:
    """Parse ``--at``: ISO 8601 (naive means UTC) or ``+N{w,d,h,m,s}`` / ``-N...``
    relative to now; raise ArgumentTypeError with an example of the right form."""
    value = text.strip()
    match = _RELATIVE.match(value)
    if match:
        sign = -1 if match.group(1) == "-" else 1
        amount, unit = float(match.group(2)), _UNITS[match.group(3)]
        if amount > _MAX_OFFSET / timedelta(**{unit: 1}):
            raise argparse.ArgumentTypeError(f"too far from now: {text!r} (at most 100 years)")
        return At(offset=sign * timedelta(**{unit: amount}))
    try:
        instant = datetime.fromisoformat(value)
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=UTC)
        return At(instant=instant.astimezone(UTC))
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (use ISO 8601 like 2027-01-15 or 2027-01-15T10:00:00Z, "
            "or a relative time like +30d, +12h)") from None


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``check`` to the command line."""
    p = subparsers.add_parser(
        "check", help="check the certificates once and exit with a Nagios code",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    config.add_source_arguments(p)
    out = p.add_argument_group("output")
    out.add_argument("--format", choices=("table", "json"), default="table",
                     help="table for people, json for machines (default: %(default)s)")
    out.add_argument("--at", type=parse_at, default=None, metavar="TIME",
                     help="judge at this instant instead of now: ISO 8601 or +30d/+12h")
    config.add_policy_arguments(p)
    config.add_api_arguments(p)
    p.set_defaults(func=run)


def probe_kubelet(sources: SourceSettings, now: datetime) -> ProbeResult | None:
    """One handshake with the kubelet's serving port, unless --no-probe."""
    kubelet = sources.kubelet
    if not kubelet.probe:
        return None
    from agent.sources.probe import probe_once

    return probe_once(kubelet.host, kubelet.port, now, kubelet.probe_timeout)


def build_past_swap_gap(sources: SourceSettings, now: datetime, api: ApiState | None,
                        sleep: Callable[[float], None] = time.sleep, *,
                        probe: ProbeResult | None = None,
                        kubelet: KubeletSettings | None = None) -> Snapshot:
    """Build the snapshot; if it caught the kubelet between swap steps 3 and 4, re-read.

    A gap that outlives the retries is real (an interrupted rotation) and is judged.
    """
    from agent.checks.common import in_swap_gap
    from agent.snapshot import build_snapshot

    snapshot = build_snapshot(sources, now, api, probe, kubelet)
    for _ in range(SWAP_GAP_RETRIES):
        if not in_swap_gap(snapshot):
            break
        sleep(SWAP_GAP_PAUSE_SECONDS)
        snapshot = build_snapshot(sources, now, api, probe, snapshot.kubelet)
    return snapshot


def evaluate(args: argparse.Namespace, clock: Clock = clockmod.utcnow,
             sleep: Callable[[float], None] = time.sleep) -> Evaluation:
    """Build the snapshot (asking the API server unless offline) and judge it."""
    from agent.checks import judge
    from agent.snapshot import discovery_request
    from agent.sources.discovery.discover import discover, effective

    configured = config.settings_from_args(args)
    at: At | None = args.at
    now = at.resolve(clock()) if at else clock()
    # The kubelet first: its node name picks this node's CSRs, its kubeconfig the API,
    # its address and port the probe.
    kubelet = discover(discovery_request(configured.sources, configured.api))
    settings = effective(configured, kubelet)
    api: ApiState | None = None
    if not (args.offline or settings.api.offline) and kubelet.found:
        from agent.sources.apiserver import fetch_once

        # The API is asked about the real present (CSRs are live state); only the
        # certificates are judged at --at.
        from agent.sources.lifeline import Lifeline

        lifeline = Lifeline(settings.api, settings.sources.node_name, clock,
                            settings.sources.kubelet.bootstrap_kubeconfig)
        api = fetch_once(settings.api, settings.sources.node_name, clock, lifeline=lifeline)
    # The probe, like the API, looks at the real present (what is served now).
    probe = probe_kubelet(settings.sources, clock())
    snapshot = build_past_swap_gap(settings.sources, now, api, sleep, probe=probe,
                                   kubelet=kubelet)
    # The daemon waits for several failures in a row before calling the API server
    # unreachable; a one-shot check makes one attempt, so one failure is the verdict.
    policy = replace(settings.policy, api_failures_before_unreachable=1)
    return judge(snapshot, now, policy)


def run(args: argparse.Namespace, clock: Clock = clockmod.utcnow) -> int:
    """Run ``check``: print the evaluation to stdout, return its Nagios exit code."""
    evaluation = evaluate(args, clock)
    # A file name that is not UTF-8, or an ASCII-only locale, must not turn a verdict
    # into UNKNOWN: unencodable characters are printed as '?'.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="replace")
    if args.format == "json":
        from agent.sinks.jsonout import evaluation_to_dict

        print(json.dumps(evaluation_to_dict(evaluation), indent=2, sort_keys=False))
    else:
        from agent.sinks.kubelet import render_lines
        from agent.sinks.table import render_table

        if evaluation.snapshot.kubelet is not None:
            print("\n".join(render_lines(evaluation.snapshot.kubelet)) + "\n")
        print(render_table(evaluation), end="")
    return exit_code(evaluation)


def exit_code(evaluation: Evaluation) -> int:
    """The Nagios code: UNKNOWN when there is no kubelet to judge, else the status."""
    if any(f.code == codes.KUBELET_NOT_FOUND for f in evaluation.findings):
        return int(Status.UNKNOWN)
    return int(evaluation.status)
