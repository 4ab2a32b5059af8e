"""The CONTROL PLANE and CERTIFICATE AUTHORITY sections of the table, as kubeadm prints them.

Same rows, order, columns, date format (``Jan 02, 2006 15:04 UTC``) and residual time
(``364d``, ``9y``, ``<invalid>``) as ``kubeadm certs check-expiration``, so an operator
recognises them, plus the table's STATE column: the findings about that file in words
(never re-derived here). A file that does not exist is ``!MISSING! <name>``, as kubeadm
shows it. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from agent import kubeadm
from agent.model import CertFile, Evaluation, ReadProblem, Role

State = Callable[[CertFile], str]  # the table's STATE words for a file, from the findings

LEAF_HEADERS = ("CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY",
                "EXTERNALLY MANAGED", "STATE")
CA_HEADERS = ("CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME", "EXTERNALLY MANAGED",
              "STATE")
CA_OF = {leaf.name: leaf.ca for leaf in kubeadm.LEAVES}


def _yes_no(flag: bool | None) -> str:
    return "yes" if flag else "no"


def _missing(cf: CertFile) -> bool:
    return cf.leaf is None and cf.read_error is not None and (
        cf.read_error.problem is ReadProblem.NOT_FOUND)


def _row(cf: CertFile, now: datetime, state: State, *, ca_column: bool) -> tuple[str, ...]:
    name = cf.name or cf.path
    middle: tuple[str, ...] = (CA_OF.get(name, ""),) if ca_column else ()
    if cf.leaf is None:  # kubeadm leaves a missing row blank but for its name
        label, middle = (f"!MISSING! {name}", ("",) * len(middle)) if _missing(cf) else (
            name, middle)
        return (label, "", "", *middle, "", state(cf))
    return (name, kubeadm.expires(cf.leaf.not_after), kubeadm.residual(cf.leaf.not_after - now),
            *middle, _yes_no(cf.externally_managed), state(cf))


def _ca_leaf(cf: CertFile, now: datetime) -> CertFile:
    """A CA file shows the CA it is judged on (rotation bundles hold two)."""
    current = kubeadm.current_ca(cf.chain, now)
    return cf if current is None or len(cf.chain) < 2 else replace(cf, leaf=current)


def sections(ev: Evaluation, state: State) -> tuple[
        list[tuple[str, ...]], list[tuple[str, ...]]]:
    """(CONTROL PLANE rows, CERTIFICATE AUTHORITY rows), headers first; empty when the
    node is not a kubeadm control plane. ``state`` words the findings about a file."""
    certs = ev.snapshot.certs
    leaves = [c for c in certs if c.role is Role.KUBEADM]
    cas = [c for c in certs if c.role is Role.KUBEADM_CA]
    if not leaves and not cas:
        return [], []
    return ([LEAF_HEADERS, *(_row(c, ev.now, state, ca_column=True) for c in leaves)],
            [CA_HEADERS, *(_row(_ca_leaf(c, ev.now), ev.now, state, ca_column=False)
                           for c in cas)])
