"""The kubelet: client-go's certificate manager per role, and its file store on a real dir.

As ``k8s.io/client-go/util/certificate/certificate_manager.go`` behaves: the rotation
deadline is drawn uniformly in [notBefore + 70 %, notBefore + 90 %] of the lifetime at
each start and after each rotation; at the deadline each attempt makes a new key and CSR
and waits up to 15 minutes for the certificate, then backs off (2 s doubling, five
steps, then every 32 s) and tries again with a new CSR. Rotation is immediate when
there is no certificate. A client certificate past notAfter cannot make a CSR (the
bootstrap token is long gone) and the kubelet exits: the node drops out. Files are
written with :func:`agent.pkigen.write_generation` and swapped with
:func:`agent.pkigen.kubelet_swap`, in the kubelet's order and local time.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from agent import pkigen
from bench.sim.cluster import Cluster, Csr
from bench.sim.world import EPOCH, MINUTE, Scenario, inside, to_datetime

WAIT = 15 * MINUTE  # certificateWaitTimeout
RESTART_AFTER = 2 * 3600.0  # a kubelet killed mid-swap is back (restarted) after this
SWAP_STEP = 0.005  # between swap steps 3 and 4 when the agent restarts in between
BACKOFF = (2.0, 4.0, 8.0, 16.0, 32.0)  # then wait.PollInfinite(32 s)


@dataclass
class Manager:
    """One role's certificate manager."""

    role: str
    cert: pkigen.Issued | None = None
    deadline: float = math.inf
    attempts: int = 0  # failed attempts since the last success
    next_attempt: float = math.inf
    rotations: int = 0
    pending: Csr | None = None  # the Csr whose certificate arrives at its issue instant
    history: list[tuple[float, float, float]] = field(default_factory=list)  # (since, nb, na)
    failing: list[list[float]] = field(default_factory=list)  # [first failure, success)

    @property
    def not_after(self) -> float:
        return self.cert.cert.not_valid_after_utc.timestamp() if self.cert else -math.inf

    @property
    def not_before(self) -> float:
        return self.cert.cert.not_valid_before_utc.timestamp() if self.cert else math.inf


@dataclass
class Kubelet:
    """A node's kubelet with its cert dir; ``step(t)`` plays everything due by ``t``."""

    scenario: Scenario
    cluster: Cluster
    root: Path
    node: str
    rng: random.Random
    managers: dict[str, Manager] = field(default_factory=dict)
    up: bool = True
    interrupted: str | None = None  # role whose swap the kubelet died in
    changed: bool = True  # files changed since the agent last looked
    crashed_until: float = -math.inf  # killed mid-swap: systemd restarts it then
    crashes: list[tuple[float, float]] = field(default_factory=list)  # (killed, restarted)
    swap_resumes: float = math.inf  # step 4 of a swap the agent restarted in the middle of
    agent_restarts: float | None = None  # the agent restarts at this instant

    @property
    def cert_dir(self) -> Path:
        return self.root / "pki"

    def install(self) -> None:
        """The node as it is at t=0: CA file, kubelet config, current certificates."""
        s = self.scenario
        self.cert_dir.mkdir(parents=True, exist_ok=True)
        bundle = self.cluster.ca.cert_pem()
        if s.retired_ca_expires is not None:  # CA rotation: the retired CA stays listed
            old = pkigen.issue("kubernetes-retired", usage="ca",
                               not_before=to_datetime(EPOCH - 9 * 365 * 86400.0),
                               not_after=to_datetime(EPOCH + s.retired_ca_expires))
            bundle = old.cert_pem() + bundle
        (self.root / "ca.crt").write_bytes(bundle)
        (self.root / "config.yaml").write_text(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
            f"rotateCertificates: {str(s.rotate_certificates).lower()}\n"
            f"serverTLSBootstrap: {str(s.server_tls_bootstrap).lower()}\n"
            f"authentication:\n  x509:\n    clientCAFile: {self.root / 'ca.crt'}\n")
        self.managers["client"] = self._installed("client", s.client_age)
        if s.server_tls_bootstrap:
            self.managers["server"] = self._installed("server", s.server_age)
        if s.self_signed_created is not None:
            pkigen.self_signed_fallback(self.cert_dir, self.node,
                                        to_datetime(EPOCH + s.self_signed_created))
        if s.watched:
            watch = self.root / "watch"
            watch.mkdir()
            for i, (nb, na) in enumerate(s.watched):
                cert = pkigen.issue(f"kube-apiserver-{i}", issuer=self.cluster.ca,
                                    usage="server", not_before=to_datetime(EPOCH + nb),
                                    not_after=to_datetime(EPOCH + na))
                (watch / f"apiserver-{i}.crt").write_bytes(cert.cert_pem())
        for m in self.managers.values():
            self._draw(m, EPOCH)

    def _installed(self, role: str, age: float | None) -> Manager:
        m = Manager(role)
        if age is None:
            return m
        nb = to_datetime(EPOCH - age)
        duration = timedelta(seconds=self.scenario.signer_duration)
        maker = pkigen.kubelet_client if role == "client" else pkigen.kubelet_server
        m.cert = maker(self.cluster.ca, self.node, nb, duration)
        path = pkigen.write_generation(self.cert_dir, role, m.cert, nb)
        pkigen.kubelet_swap(self.cert_dir, role, path)
        m.history.append((EPOCH, m.not_before, m.not_after))
        return m

    def _draw(self, m: Manager, t: float) -> None:
        """nextRotationDeadline: uniform in 70-90 % of the lifetime (now if no cert)."""
        if m.cert is None:
            m.deadline = t
        else:
            life = m.not_after - m.not_before
            m.deadline = m.not_before + life * (0.7 + 0.2 * self.rng.random())
        m.next_attempt = max(t, m.deadline)
        m.attempts = 0

    def rotates(self, role: str) -> bool:
        return role == "server" or self.scenario.rotate_certificates

    def client_valid(self, t: float) -> bool:
        c = self.managers["client"]
        return c.cert is not None and c.not_after > t

    def next_event(self) -> float:
        if not self.up:
            return math.inf
        return min(self.swap_resumes, *(self._due(m) for r, m in self.managers.items()
                                        if self.rotates(r)))

    @staticmethod
    def _due(m: Manager) -> float:
        if m.pending is not None:
            return m.pending.issued
        return m.next_attempt

    def set_up(self, up: bool, t: float) -> None:
        """The kubelet stops or (re)starts at ``t``; a start repairs an interrupted swap
        and re-draws every deadline."""
        if up == self.up:
            return
        self.up = up
        if up:
            if self.interrupted is not None:
                role = self.interrupted
                os.rename(self.cert_dir / f"kubelet-{role}-updated.pem",
                          self.cert_dir / f"kubelet-{role}-current.pem")
                self.interrupted = None
                self.changed = True
            for m in self.managers.values():
                self._draw(m, t)

    def step(self, t: float) -> None:
        """Play every rotation attempt due at or before ``t``."""
        if self.swap_resumes <= t and self.interrupted is not None:  # step 4, ms later
            role = self.interrupted
            os.rename(self.cert_dir / f"kubelet-{role}-updated.pem",
                      self.cert_dir / f"kubelet-{role}-current.pem")
            self.interrupted, self.swap_resumes, self.changed = None, math.inf, True
        for role, m in self.managers.items():
            while self.up and self.rotates(role) and self._due(m) <= t:
                if m.pending is not None:
                    self._install(m, m.pending)
                else:
                    self._attempt(m, m.next_attempt)

    def _attempt(self, m: Manager, t: float) -> None:
        if not self.client_valid(t) or not self.cluster.reachable(t):
            self._failed(m, t, waited=0.0)  # no CSR can be made
            return
        csr = self.cluster.submit(m.role, self.node, t)
        if csr.issued > t + WAIT or inside(csr.issued, self.scenario.kubelet_down):
            self._failed(m, t, waited=WAIT)
            return
        m.pending = csr

    def _install(self, m: Manager, csr: Csr) -> None:
        m.pending = None
        m.cert = self.cluster.sign(csr)
        m.history.append((csr.issued, m.not_before, m.not_after))
        path = pkigen.write_generation(self.cert_dir, m.role, m.cert,
                                       to_datetime(csr.issued))
        kill = self.scenario.kill_kubelet_mid_swap
        restart = self.scenario.agent_restart_mid_swap
        if restart is not None and csr.issued >= EPOCH + restart and m.role == "client" \
                and self.interrupted is None and m.rotations == 0:
            pkigen.kubelet_swap(self.cert_dir, m.role, path, stop_after=3)
            self.interrupted = m.role
            self.swap_resumes = csr.issued + SWAP_STEP
            self.agent_restarts = csr.issued
        elif kill is not None and csr.issued >= EPOCH + kill and self.interrupted is None \
                and m.rotations == 0:
            pkigen.kubelet_swap(self.cert_dir, m.role, path, stop_after=3)
            self.interrupted = m.role
            self.crashed_until = csr.issued + RESTART_AFTER
            self.crashes.append((csr.issued, self.crashed_until))
            self.up = False
        else:
            pkigen.kubelet_swap(self.cert_dir, m.role, path)
        m.rotations += 1
        if m.failing and len(m.failing[-1]) == 1:
            m.failing[-1].append(csr.issued)
        self.changed = True
        self._draw(m, csr.issued)

    def _failed(self, m: Manager, t: float, waited: float) -> None:
        if not m.failing or len(m.failing[-1]) == 2:
            m.failing.append([t])
        pause = BACKOFF[min(m.attempts, len(BACKOFF) - 1)]
        m.attempts += 1
        m.next_attempt = t + waited + pause
        if waited == 0.0:  # nothing to wait for: poll again in 32 s, at most every minute
            m.next_attempt = t + WAIT
