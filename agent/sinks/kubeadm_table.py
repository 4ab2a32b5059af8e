"""The CONTROL PLANE and CERTIFICATE AUTHORITY sections of the table, as kubeadm prints them.

Same rows, order, columns, date format (``Jan 02, 2006 15:04 UTC``) and residual time
(``364d``, ``9y``, ``<invalid>``) as ``kubeadm certs check-expiration``, so an operator
recognises them, plus one VERDICT column rendered from the findings about that file
(never re-derived here). A file that does not exist is ``!MISSING! <name>``, as kubeadm
shows it. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from agent import kubeadm
from agent.model import CertFile, Evaluation, Finding, ReadProblem, Role, Severity

LEAF_HEADERS = ("CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY",
                "EXTERNALLY MANAGED", "VERDICT")
CA_HEADERS = ("CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME", "EXTERNALLY MANAGED",
              "VERDICT")
CA_OF = {leaf.name: leaf.ca for leaf in kubeadm.LEAVES}


def verdict(cf: CertFile, findings: Sequence[Finding]) -> str:
    """``ok``, or the worst severity and every code the checks reported for this file."""
    paths = {p for p in (cf.path, cf.target, cf.key_path) if p}
    about = [f for f in findings if f.path in paths]
    if not about:
        return "ok"
    worst = max(f.severity for f in about)
    codes = sorted({f.code for f in about if f.severity is worst})
    return f"{worst.label}: {', '.join(codes)}" + (
        " (+info)" if worst is not Severity.INFO and any(
            f.severity is Severity.INFO for f in about) else "")


def _yes_no(flag: bool | None) -> str:
    return "yes" if flag else "no"


def _missing(cf: CertFile) -> bool:
    return cf.leaf is None and cf.read_error is not None and (
        cf.read_error.problem is ReadProblem.NOT_FOUND)


def _row(cf: CertFile, now: datetime, findings: Sequence[Finding], *,
         ca_column: bool) -> tuple[str, ...]:
    name = cf.name or cf.path
    middle = (CA_OF.get(name, ""),) if ca_column else ()
    if cf.leaf is None:
        label = f"!MISSING! {name}" if _missing(cf) else name
        return (label, "", "", *middle, "", verdict(cf, findings))
    return (name, kubeadm.expires(cf.leaf.not_after), kubeadm.residual(cf.leaf.not_after - now),
            *middle, _yes_no(cf.externally_managed), verdict(cf, findings))


def _ca_leaf(cf: CertFile, now: datetime) -> CertFile:
    """A CA file shows the CA it is judged on (rotation bundles hold two)."""
    current = kubeadm.current_ca(cf.chain, now)
    return cf if current is None or len(cf.chain) < 2 else replace(cf, leaf=current)


def sections(ev: Evaluation) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """(CONTROL PLANE rows, CERTIFICATE AUTHORITY rows), headers first; empty when the
    node is not a kubeadm control plane."""
    certs = ev.snapshot.certs
    leaves = [c for c in certs if c.role is Role.KUBEADM]
    cas = [c for c in certs if c.role is Role.KUBEADM_CA]
    if not leaves and not cas:
        return [], []
    return ([LEAF_HEADERS, *(_row(c, ev.now, ev.findings, ca_column=True) for c in leaves)],
            [CA_HEADERS, *(_row(_ca_leaf(c, ev.now), ev.now, ev.findings, ca_column=False)
                           for c in cas)])
