"""A kubeadm control plane written at test time, and ways to judge it.

The tree is ``kubeadm init`` on ``cp1`` INIT before NOW (one-year RSA leaves, ten-year
CAs, kubeconfigs as clientcmd writes them), made once per session by
:mod:`agent.pkigen_kubeadm` and copied per test so each test can break its own copy.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from agent import kubeadm
from agent.checks import judge
from agent.config import SourceSettings
from agent.model import CertFile, Evaluation, Finding, Policy
from agent.pkigen_kubeadm import ControlPlane, build_control_plane
from agent.snapshot import build_snapshot
from tests.conftest import NOW

NODE = "cp1"
INIT = NOW - timedelta(days=100)  # leaves have 265 days left at NOW: healthy
NAMES = kubeadm.NAMES  # the fourteen, leaves in kubeadm's order then the CAs


@dataclass
class Plane:
    """A test's own copy of the control plane (``plane.root`` is the kubeadm dir)."""

    plane: ControlPlane

    @property
    def root(self) -> Path:
        return self.plane.root

    def path(self, name: str) -> Path:
        return self.plane.path(name)

    def sources(self, **kw: object) -> SourceSettings:
        """Only the kubeadm dir: the kubelet's own files are other tests' business."""
        base: dict[str, object] = {"cert_dir": self.root.parent / "no-kubelet",
                                   "kubelet_config": None, "node_name": NODE,
                                   "kubeadm_dir": self.root, "kubeadm_explicit": True}
        return SourceSettings(**{**base, **kw})  # type: ignore[arg-type]

    def evaluate(self, at: datetime = NOW, **kw: object) -> Evaluation:
        return judge(build_snapshot(self.sources(**kw), at), at, Policy())

    def findings(self, at: datetime = NOW) -> list[Finding]:
        """The findings about files under the kubeadm dir."""
        prefix = str(self.root) + "/"
        return [f for f in self.evaluate(at).findings if (f.path or "").startswith(prefix)]

    def file(self, name: str, at: datetime = NOW) -> CertFile:
        snap = build_snapshot(self.sources(), at)
        return next(c for c in snap.certs if c.name == name)


def template(directory: Path) -> ControlPlane:
    return build_control_plane(directory / "etc" / "kubernetes", NODE, INIT)


def copy_of(original: ControlPlane, directory: Path) -> Plane:
    root = directory / "etc" / "kubernetes"
    shutil.copytree(original.root, root, symlinks=True)
    return Plane(replace(original, root=root, cas=dict(original.cas),
                         leaves=dict(original.leaves)))
