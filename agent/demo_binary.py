"""``demo DIR --layout binary``: the seeds' binary install, written under DIR as a host root.

The layout of the operators' guide (``/opt/k8s/bin/kubelet`` started by
``/etc/systemd/system/kubelet.service`` with every setting as a flag): cert dir
``/etc/kubernetes/cert``, config ``/etc/kubernetes/kubelet-config.yaml`` (serverTLSBootstrap
and rotateCertificates on), kubeconfig ``/etc/kubernetes/kubelet.kubeconfig``. Links in the
cert dir point at absolute *host* paths, as the kubelet writes them, so they resolve only
under ``--host-root DIR``: ``check --host-root DIR`` finds everything with no other flag.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path

import yaml

from agent import pkigen

CERT_DIR = "/etc/kubernetes/cert"
CONFIG = "/etc/kubernetes/kubelet-config.yaml"
KUBECONFIG = "/etc/kubernetes/kubelet.kubeconfig"
BOOTSTRAP = "/etc/kubernetes/kubelet-bootstrap.kubeconfig"
UNIT = "/etc/systemd/system/kubelet.service"
UNIT_TEXT = """\
[Unit]
Description=Kubernetes Kubelet
Documentation=https://github.com/GoogleCloudPlatform/kubernetes
After=docker.service
Requires=docker.service

[Service]
WorkingDirectory=/data/k8s/k8s/kubelet
ExecStart=/opt/k8s/bin/kubelet \\
  --root-dir=/data/k8s/k8s/kubelet \\
  --bootstrap-kubeconfig={bootstrap} \\
  --cert-dir={cert_dir} \\
  --kubeconfig={kubeconfig} \\
  --config={config} \\
  --hostname-override={node} \\
  --pod-infra-container-image=registry.cn-beijing.aliyuncs.com/k8s_images/pause-amd64:3.1 \\
  --event-qps=0 \\
  --kube-api-qps=1000 \\
  --kube-api-burst=2000 \\
  --registry-qps=0 \\
  --logtostderr=true \\
  --v=2
Restart=always
RestartSec=5
StartLimitInterval=0

[Install]
WantedBy=multi-user.target
"""


def host(root: Path, host_path: str) -> Path:
    return root / host_path.lstrip("/")


def rehost_links(cert_dir: Path, host_dir: str = CERT_DIR) -> None:
    """Point every link at the absolute host path of its target, as the kubelet does."""
    for entry in cert_dir.iterdir():
        if entry.is_symlink():
            name = Path(os.readlink(entry)).name
            entry.unlink()
            entry.symlink_to(f"{host_dir}/{name}")


def write_binary_demo(root: Path, node: str, now: datetime,
                      build: pkigen.NodePki | None = None) -> Path:
    """Write the binary install under ``root``; returns the root (resolved).

    ``build`` is the PKI :func:`agent.demo.write_demo` made under ``root/etc/kubernetes``.
    """
    from agent.demo import kubelet_configuration, kubelet_kubeconfig

    root = root.resolve()
    assert build is not None  # noqa: S101 - the demo command always passes its PKI
    cert_dir = host(root, CERT_DIR)
    shutil.move(build.cert_dir, cert_dir)
    shutil.move(build.ca_file, cert_dir / "ca.pem")
    rehost_links(cert_dir)
    config = kubelet_configuration(Path(f"{CERT_DIR}/ca.pem"))
    config.update({"address": "0.0.0.0", "port": 10250})  # noqa: S104 - written, never bound
    host(root, CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
    current = Path(f"{CERT_DIR}/kubelet-client-current.pem")
    host(root, KUBECONFIG).write_text(yaml.safe_dump(
        kubelet_kubeconfig(Path(f"{CERT_DIR}/ca.pem"), current), sort_keys=False))
    unit = host(root, UNIT)
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(UNIT_TEXT.format(bootstrap=BOOTSTRAP, cert_dir=CERT_DIR,
                                     kubeconfig=KUBECONFIG, config=CONFIG, node=node))
    return root
