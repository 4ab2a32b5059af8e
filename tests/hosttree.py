"""Real host trees for discovery: systemd units, env files and kubelet configs under a
temporary ``--host-root``, written exactly as the packages and the seeds' guide write them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from agent import pkigen
from agent.demo_binary import rehost_links

__all__ = ["rehost_links"]

# kubernetes/release packaging: kubelet.service and 10-kubeadm.conf (deb flavour)
KUBEADM_UNIT = """\
[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
"""
KUBEADM_DROPIN = """\
# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
# This is a file that "kubeadm init" and "kubeadm join" generates at runtime, populating the KUBELET_KUBEADM_ARGS variable dynamically
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# This is a file that the user can use for overrides of the kubelet args as a last resort. Preferably, the user should use
# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. KUBELET_EXTRA_ARGS should be sourced from this file.
EnvironmentFile=-{extra}
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""  # noqa: E501 - the packaged file's own line lengths
KUBEADM_FLAGS = ('KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/containerd/'
                 'containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.10"\n')
KUBEADM_CONFIG = """\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
cgroupDriver: systemd
rotateCertificates: true
"""
# The seeds' binary install (deploy-kubelet-guide.md), ##NODE_NAME## and ${K8S_DIR}
# substituted as its heredoc and sed do; note the line without a trailing backslash.
SEEDS_UNIT = """\
[Unit]
Description=Kubernetes Kubelet
Documentation=https://github.com/GoogleCloudPlatform/kubernetes
After=docker.service
Requires=docker.service

[Service]
WorkingDirectory=/data/k8s/k8s/kubelet
ExecStart=/opt/k8s/bin/kubelet \\
  --root-dir=/data/k8s/k8s/kubelet \\
  --bootstrap-kubeconfig=/etc/kubernetes/kubelet-bootstrap.kubeconfig \\
  --cert-dir=/etc/kubernetes/cert \\
  --kubeconfig=/etc/kubernetes/kubelet.kubeconfig \\
  --config=/etc/kubernetes/kubelet-config.yaml \\
  --hostname-override={node} \\
  --pod-infra-container-image=registry.cn-beijing.aliyuncs.com/k8s_images/pause-amd64:3.1
  --allow-privileged=true \\
  --event-qps=0 \\
  --kube-api-qps=1000 \\
  --kube-api-burst=2000 \\
  --registry-qps=0 \\
  --image-pull-progress-deadline=30m \\
  --logtostderr=true \\
  --v=2
Restart=always
RestartSec=5
StartLimitInterval=0

[Install]
WantedBy=multi-user.target
"""
SEEDS_ARGV = ["/opt/k8s/bin/kubelet", "--root-dir=/data/k8s/k8s/kubelet",
              "--bootstrap-kubeconfig=/etc/kubernetes/kubelet-bootstrap.kubeconfig",
              "--cert-dir=/etc/kubernetes/cert",
              "--kubeconfig=/etc/kubernetes/kubelet.kubeconfig",
              "--config=/etc/kubernetes/kubelet-config.yaml",
              "--hostname-override=m7-autocv-gpu01",
              "--pod-infra-container-image=registry.cn-beijing.aliyuncs.com/k8s_images/"
              "pause-amd64:3.1"]


def write(root: Path, host_path: str, text: str | bytes) -> Path:
    path = root / host_path.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def kubelet_config(**fields: Any) -> str:
    return json.dumps({"apiVersion": "kubelet.config.k8s.io/v1beta1",
                       "kind": "KubeletConfiguration", **fields})


def kubeadm_node(root: Path, *, rpm: bool = False, extra_args: str = "",
                 base: str = "/usr/lib/systemd/system") -> Path:
    """kubeadm's packaged unit and drop-in, kubeadm-flags.env, /etc/default/kubelet
    (/etc/sysconfig/kubelet on RPM systems) and kubeadm's config.yaml."""
    extra = "/etc/sysconfig/kubelet" if rpm else "/etc/default/kubelet"
    write(root, f"{base}/kubelet.service", KUBEADM_UNIT)
    write(root, f"{base}/kubelet.service.d/10-kubeadm.conf", KUBEADM_DROPIN.format(extra=extra))
    write(root, "/var/lib/kubelet/kubeadm-flags.env", KUBEADM_FLAGS)
    write(root, extra, f"KUBELET_EXTRA_ARGS={extra_args}\n")
    write(root, "/var/lib/kubelet/config.yaml", KUBEADM_CONFIG)
    return root


def seeds_node(root: Path, node: str = "m7-autocv-gpu01") -> Path:
    """The seeds' binary install: its unit and its kubelet-config.yaml."""
    write(root, "/etc/systemd/system/kubelet.service", SEEDS_UNIT.format(node=node))
    write(root, "/etc/kubernetes/kubelet-config.yaml",
          "kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\n"
          "authentication:\n  x509:\n    clientCAFile: \"/etc/kubernetes/cert/ca.pem\"\n"
          "rotateCertificates: true\nserverTLSBootstrap: true\nport: 10250\n"
          "address: \"192.168.1.88\"\n")
    return root


def pki_at(root: Path, host_dir: str, node: str, now: datetime, **kw: Any) -> pkigen.NodePki:
    """A healthy node PKI in ``host_dir`` under ``root``, links to absolute host paths as
    the kubelet writes them (they resolve only under the host root); ``ca.crt`` beside."""
    built = pkigen.build_node(root / "build", node, now, **kw)
    target = root / host_dir.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(built.cert_dir, target)
    rehost_links(target, host_dir)
    return built


def start_kubelet(directory: Path, argv: list[str]) -> subprocess.Popen[bytes]:
    """A real process whose comm is ``kubelet`` and whose argv is ``argv`` (plus a ``-``
    after argv[0]): the Python interpreter through a symlink named kubelet, reading its
    program (a long sleep) from stdin. The caller kills it."""
    from agent.sources.discovery import procscan

    exe = directory / "kubelet"
    if not exe.exists():
        directory.mkdir(parents=True, exist_ok=True)
        exe.symlink_to(os.path.realpath(sys.executable))
    proc = subprocess.Popen([argv[0], "-", *argv[1:]], executable=str(exe),
                            stdin=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(b"import time\ntime.sleep(120)\n")
    proc.stdin.close()
    deadline = time.monotonic() + 10
    while not procscan.kubelets("/proc", {proc.pid}) and time.monotonic() < deadline:
        time.sleep(0.01)  # bounded: exec sets comm at once, this rarely loops
    return proc
