"""``kubelet-cert-agent demo DIR``: write a realistic demo node PKI to try ``check`` on.

The node looks like a kubeadm worker one day after an unnoticed problem started: the
client certificate rotated several times and is healthy, but the serving certificate is
past 90 % of its lifetime (its renewal CSR waits for an approval nobody gives, because
kubelet-serving CSRs are never auto-approved), so ``check`` reports ROTATION_OVERDUE.
Everything is made by :mod:`agent.pkigen`, the same factory the tests use.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from agent import clock as clockmod
from agent import pkigen
from agent.clock import Clock
from agent.model import Status
from agent.pkigen_kubeadm import build_control_plane

DEFAULT_NODE = "demo-node-1"
LIFETIME = timedelta(days=365)
# Fraction of its lifetime the serving certificate has lived: past the 90 % window end,
# yet more than 30 days before expiry, so ROTATION_OVERDUE is the one warning.
SERVER_AGE = 0.91
API_SERVER = "https://127.0.0.1:6443"


@dataclass(frozen=True)
class DemoNode:
    """What :func:`write_demo` wrote."""

    root: Path
    cert_dir: Path
    ca_file: Path
    kubelet_config: Path
    kubeconfig: Path
    node: str


def demo_pki(root: Path, node: str, now: datetime) -> pkigen.NodePki:
    """``root/pki`` and ``root/ca.crt``: rotated client, serving certificate past 90 %."""
    root.mkdir(parents=True, exist_ok=True)
    pki = pkigen.build_node(root, node, now, client_generations=4, lifetime=LIFETIME,
                            server=False, fallback=True)
    issued_at = now - LIFETIME * SERVER_AGE
    server = pkigen.kubelet_server(pki.ca, node, issued_at, LIFETIME)
    generation = pkigen.write_generation(pki.cert_dir, "server", server, issued_at)
    pkigen.kubelet_swap(pki.cert_dir, "server", generation)
    return pki


def write_demo(root: Path, node: str, now: datetime) -> DemoNode:
    """Write the demo node under ``root`` (which must not exist or be empty)."""
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    pki = demo_pki(root, node, now)
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump(kubelet_configuration(pki.ca_file), sort_keys=False))
    kubeconfig = root / "kubelet.conf"
    current = pki.cert_dir / "kubelet-client-current.pem"
    kubeconfig.write_text(yaml.safe_dump(kubelet_kubeconfig(pki.ca_file, current),
                                         sort_keys=False))
    return DemoNode(root=root, cert_dir=pki.cert_dir, ca_file=pki.ca_file,
                    kubelet_config=config, kubeconfig=kubeconfig, node=node)


def kubelet_configuration(ca_file: Path) -> dict[str, Any]:
    """A KubeletConfiguration as kubeadm writes it, with serving-certificate bootstrap."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "authentication": {"x509": {"clientCAFile": str(ca_file)}},
        "rotateCertificates": True,
        "serverTLSBootstrap": True,
    }


def kubelet_kubeconfig(ca_file: Path, client: Path) -> dict[str, Any]:
    """The kubelet's kubeconfig (kubeadm's kubelet.conf): cert and key in one file."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "default-cluster", "cluster": {
            "certificate-authority": str(ca_file), "server": API_SERVER}}],
        "contexts": [{"name": "default-context", "context": {
            "cluster": "default-cluster", "namespace": "default", "user": "default-auth"}}],
        "current-context": "default-context",
        "users": [{"name": "default-auth", "user": {
            "client-certificate": str(client), "client-key": str(client)}}],
    }


KUBEADM_AGE = timedelta(days=340)  # kubeadm init that long ago: its leaves warn (25 d left)


def write_control_plane(root: Path, node: str, now: datetime) -> Path:
    """``root/kubernetes``: a kubeadm control plane initialised KUBEADM_AGE ago."""
    return build_control_plane(root.resolve() / "kubernetes", node, now - KUBEADM_AGE).root


def check_command(directory: str, node: str, *, control_plane: bool = False,
                  layout: str = "flat") -> str:
    """The ``check`` command line to run on the demo (paths as the user typed them)."""
    base = directory.rstrip("/") or "/"
    # --no-probe: the demo's files are not what this machine's kubelet (if any) serves
    if layout == "binary":  # discovery finds everything under the host root
        return shlex.join(["kubelet-cert-agent", "check", "--offline", "--no-probe",
                           "--host-root", base])
    kubeadm = ["--kubeadm-dir", f"{base}/kubernetes"] if control_plane else []
    return shlex.join(["kubelet-cert-agent", "check", "--offline", "--no-probe",
                       "--cert-dir", f"{base}/pki", "--kubelet-config", f"{base}/config.yaml",
                       "--node-name", node, *kubeadm])


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``demo`` to the command line."""
    p = subparsers.add_parser(
        "demo", help="write a realistic demo node PKI to try 'check' on",
        description="Write a demo kubelet PKI under DIR: DIR/pki (client certificate with "
                    "rotated history, serving certificate past its rotation window, the "
                    "self-signed kubelet.crt fallback), DIR/ca.crt, DIR/config.yaml "
                    "(KubeletConfiguration) and DIR/kubelet.conf (kubeconfig). "
                    "Then print the check command to run on it.")
    p.add_argument("directory", metavar="DIR", help="where to write (must not exist or be empty)")
    p.add_argument("--node-name", default=DEFAULT_NODE, metavar="NAME",
                   help="the demo node's name (default: %(default)s)")
    p.add_argument("--layout", choices=("flat", "binary"), default="flat",
                   help="flat: DIR/pki, DIR/config.yaml, DIR/kubelet.conf (pass their paths "
                        "to check); binary: the operators' guide binary install with DIR as "
                        "the host root (etc/systemd/system/kubelet.service with the flags, "
                        "etc/kubernetes/cert, etc/kubernetes/kubelet-config.yaml), found by "
                        "`check --host-root DIR` alone (default: %(default)s)")
    p.add_argument("--control-plane", action="store_true",
                   help="also write DIR/kubernetes, a kubeadm control plane initialised "
                        "340 days ago (its certificates have 25 days left)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, clock: Clock = clockmod.utcnow) -> int:
    """Write the demo and print what was written; UNKNOWN (3) if DIR is in the way."""
    root = Path(args.directory)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        print(f"UNKNOWN: {root} exists and is not an empty directory; remove it or "
              "choose another", file=sys.stderr)
        return int(Status.UNKNOWN)
    layout = getattr(args, "layout", "flat")
    control_plane = getattr(args, "control_plane", False)
    if layout == "binary":
        from agent.demo_binary import write_binary_demo

        written = write_binary_demo(root, args.node_name, clock(), demo_pki(
            root / "etc" / "kubernetes", args.node_name, clock()))
    else:
        written = write_demo(root, args.node_name, clock()).root
        if control_plane:
            write_control_plane(written, args.node_name, clock())
    print(f"wrote a demo PKI for node {args.node_name} under {written}:")
    for path in sorted(p for p in written.rglob("*") if not p.is_dir()):
        # binary layout: links name absolute host paths, as the kubelet writes them
        shown = (path.readlink() if layout == "binary" else path.readlink().name) \
            if path.is_symlink() else None
        link = f" -> {shown}" if shown else ""
        print(f"  {path.relative_to(written)}{link}")
    print("the serving certificate is past 90 % of its lifetime and was not renewed "
          "(expect ROTATION_OVERDUE)"
          + ("; the kubeadm certificates expire in 25 days (expect CERT_EXPIRING_SOON)"
             if control_plane and layout != "binary" else "")
          + ".\nnext, run:\n  "
          + check_command(args.directory, args.node_name,
                          control_plane=control_plane and layout != "binary", layout=layout))
    return int(Status.OK)
