"""``kubelet-cert-agent discover``: print the kubelet as the agent finds it, and why.

The same discovery ``check`` and ``run`` use, printed alone: which kubelet (pid,
binary, unit) and every setting with its source. Exit codes (Nagios): 0 found, 1 found
but a source could not be used (a note says which), 3 no kubelet found.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from agent import config
from agent.model import KubeletSettings, Status

DESCRIPTION = """\
Find the kubelet on this host and print its settings, each with where it came from.

Where the agent looks, in order (the first that exists decides the command line):
  1. the running kubelet: /proc/<pid>/cmdline of the process named "kubelet"
     (the oldest when several run; the others are listed);
  2. systemd's kubelet.service (/etc/systemd/system, /run/systemd/system,
     /usr/lib/systemd/system, /lib/systemd/system) with every
     kubelet.service.d/*.conf drop-in, Environment=, EnvironmentFile= and
     $VAR/${VAR} expansion, as systemd would start it;
  3. the kubelet's defaults (cert dir /var/lib/kubelet/pki, kubeadm's config
     /var/lib/kubelet/config.yaml if it exists).
Then the --config file (YAML or JSON KubeletConfiguration) and --config-dir
drop-ins are merged, and command-line flags win over both, as the kubelet does.

Precedence, highest first: this agent's --cert-dir, --kubelet-config,
--node-name, --kubeconfig; the kubelet's flags; --config-dir drop-ins; the
--config file; the kubelet's defaults."""

EPILOG = """\
exit codes (Nagios):
  0 OK        the kubelet was found and every source could be read
  1 WARNING   found, but a source could not be used (see the "note:" lines)
  3 UNKNOWN   no kubelet process, unit or default files: pass --host-root DIR
              (e.g. /host in a container), or --cert-dir/--kubelet-config/--node-name

examples:
  kubelet-cert-agent discover
  kubelet-cert-agent discover --host-root /host --format json | jq .kubelet.certDir"""


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``discover`` to the command line."""
    p = subparsers.add_parser(
        "discover", help="print the kubelet's settings as discovered, with their sources",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("where to look")
    g.add_argument("--host-root", default="/", metavar="DIR",
                   help="read the host under DIR (default: %(default)s)")
    g.add_argument("--cert-dir", default=None, metavar="DIR", help="override the cert dir")
    g.add_argument("--kubelet-config", default=None, metavar="FILE",
                   help="override the config file ('' for none)")
    g.add_argument("--node-name", default=None, metavar="NAME", help="override the node name")
    g.add_argument("--kubeconfig", default=None, metavar="FILE",
                   help="override the kubeconfig")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="(default: %(default)s)")
    p.set_defaults(func=run)


def exit_code(k: KubeletSettings) -> int:
    if not k.found:
        return int(Status.UNKNOWN)
    return int(Status.WARNING if k.problems or k.config_error else Status.OK)


def run(args: argparse.Namespace) -> int:
    from agent.sinks.kubelet import render_lines, status_fields
    from agent.snapshot import discovery_request
    from agent.sources.discovery.discover import discover

    settings = config.settings_from_args(args)
    k = discover(discovery_request(settings.sources, settings.api))
    if args.format == "json":
        print(json.dumps(status_fields(k), indent=2))
    else:
        print("\n".join(render_lines(k)))
        if not k.found:
            print("UNKNOWN: no kubelet found; looked in " + ", ".join(k.looked)
                  + "; pass --host-root DIR or --cert-dir/--kubelet-config/--node-name")
        if k.config_error is not None:
            print(f"  note: config unreadable: {k.config_error.detail}")
    return exit_code(k)
