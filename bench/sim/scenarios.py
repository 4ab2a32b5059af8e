"""The scenarios, each a year of one node unless said otherwise.

Installed state at t=0 is chosen so the event under test falls inside the year: the
client certificate's age decides when its 70-90 % window opens (a one-year certificate
installed 100 days ago rotates between day 155 and day 228).
"""

from __future__ import annotations

from dataclasses import replace

from bench.sim.world import DAY, HOUR, MINUTE, Group, Scenario

# A one-year client certificate 10 days old at t=0: window days 245-318, expiry day 355.
LATE = 10 * DAY
# One 334 days old: past its window at t=0, expires on day 31 (30 d of warning).
OLD = 334 * DAY


def _fleet() -> tuple[Group, ...]:
    """100 nodes, 5 % with each fault at once, 75 healthy; one node of each group played
    (the others are the same), two healthy ones. Every fault is installed so that it
    shows within the fleet's 32 days; never-approved nodes repeat the same day (a CSR
    every 15 minutes) and are played for 2."""
    def group(name: str, count: int, played: int, **faults: object) -> Group:
        return Group(name, count, played, Scenario(name, "", **faults))  # type: ignore[arg-type]
    return (
        group("healthy", 75, 2),
        group("never-approved", 5, 1, server_age=None, serving_approval_delay=None,
              span=2 * DAY),
        group("approver-removed", 5, 1, client_age=OLD, client_rbac_removed=0.0),
        group("rotation-off", 5, 1, client_age=OLD, rotate_certificates=False),
        group("watch-expiring", 5, 1, watched=((-335 * DAY, 31 * DAY),)),
        group("kubelet-down", 5, 1, client_age=300 * DAY, kubelet_down=((DAY, 15 * DAY),)),
    )

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("healthy", "one-year certificates rotating on time; serving CSRs approved "
             "by hand within 5 minutes", expect="no alert"),
    Scenario("serving-never-approved", "serverTLSBootstrap on a fresh node, nobody approves "
             "serving CSRs: kubectl logs broken from the start (3 days: then the same every day)",
             span=3 * DAY, server_age=None,
             serving_approval_delay=None, expect="critical page within 30 min"),
    Scenario("approver-removed-m8", "the selfnodeclient RBAC binding is removed in month 8: "
             "client renewals stay Pending until the certificate expires",
             client_age=LATE, client_rbac_removed=240 * DAY,
             expect="warning >= 30 d, critical >= 7 d before the node drops out"),
    Scenario("signer-down-3d", "the signer is down for 3 days around the client rotation "
             "deadline; it heals by itself", client_age=LATE,
             signer_down_around=(-1 * DAY, 2 * DAY),
             expect="at most warnings, no critical page"),
    Scenario("kubelet-down-2w", "the kubelet is stopped for 2 weeks across the end of its "
             "rotation window, then rotates at once", client_age=LATE,
             kubelet_down_around=(-7 * DAY, 7 * DAY), expect="warnings only"),
    Scenario("rotation-off", "rotateCertificates: false; the client certificate expires in "
             "the year", client_age=LATE, rotate_certificates=False,
             expect="warning all year (ROTATION_DISABLED), critical >= 7 d before expiry"),
    Scenario("self-signed", "serverTLSBootstrap off: the self-signed kubelet.crt made at "
             "install (320 days ago) expires on day 45", server_tls_bootstrap=False,
             self_signed_created=-320 * DAY,
             expect="warning all year, critical >= 7 d before kubelet.crt expires"),
    Scenario("watch-expiring", "a --watch control-plane certificate (apiserver.crt) expires "
             "on day 60", watched=((-305 * DAY, 60 * DAY),),
             expect="warning >= 30 d, critical >= 7 d before"),
    Scenario("agent-dead-textfile", "the agent dies on day 90 and stays dead; "
             "node_exporter keeps serving its last textfile", collection="textfile",
             agent_down=((90 * DAY, 400 * DAY),), expect="agent-dark alert within 30 min"),
    Scenario("agent-dead-scrape", "the agent dies on day 90 and stays dead (scraped)",
             agent_down=((90 * DAY, 400 * DAY),), expect="agent-dark alert within 30 min"),
    Scenario("api-unreachable-2d", "the API server is unreachable from the node for 2 days",
             api_down=((50 * DAY, 52 * DAY),), expect="warning only"),
    Scenario("interrupted-swap", "the kubelet dies between swap steps 3 and 4 of its first "
             "client rotation; systemd restarts it 2 hours later and it repairs the link",
             kill_kubelet_mid_swap=0.0, client_age=280 * DAY,
             expect="no critical page"),
    Scenario("clock-ahead-2h", "the node's clock runs 2 hours ahead (healthy otherwise)",
             clock_skew=2 * HOUR, expect="no alert"),
    Scenario("clock-behind-2h", "the node's clock runs 2 hours behind (healthy otherwise): "
             "each new certificate is 'not yet valid' on the node for 1 h 55 m",
             clock_skew=-2 * HOUR, expect="no page (nothing breaks)"),
    Scenario("short-lived-1h", "1-hour certificates (signing duration 1 h), a custom "
             "approver signs serving CSRs in 5 s; 3 days",
             span=3 * DAY, signer_duration=HOUR, client_age=10 * MINUTE,
             server_age=20 * MINUTE, serving_approval_delay=5.0, expect="no alert"),
    Scenario("short-lived-1d", "1-day certificates, the approver removed on day 20",
             span=30 * DAY, signer_duration=DAY, client_age=2 * HOUR, server_age=3 * HOUR,
             serving_approval_delay=1 * MINUTE, client_rbac_removed=20 * DAY,
             expect="warning >= 2.4 h, critical >= 1.2 h before expiry"),
    Scenario("short-lived-45d", "45-day certificates, the approver removed on day 200",
             signer_duration=45 * DAY, client_age=5 * DAY, server_age=6 * DAY,
             client_rbac_removed=200 * DAY, expect="warning >= 4.5 d, critical >= 2.25 d"),
    Scenario("textfile-full-1d", "the textfile directory is full for a day (day 50): "
             "the agent's writes fail, node_exporter serves the stale file",
             collection="textfile", textfile_full=((50 * DAY, 51 * DAY),), span=60 * DAY,
             expect="agent-stale warning within 30 min, no page"),
    Scenario("ca-rotation", "ca.crt holds the retired CA (expires day 30) beside the "
             "current one: CA_ROTATION_IN_PROGRESS (info)", retired_ca_expires=30 * DAY,
             span=60 * DAY, expect="no alert"),
    Scenario("agent-restart-mid-swap", "the agent restarts between the kubelet's swap "
             "steps 3 and 4 of its client rotation (-current.pem missing, -updated.pem "
             "there); the kubelet completes the swap 5 ms later",
             agent_restart_mid_swap=0.0, client_age=325 * DAY, span=10 * DAY,
             expect="no alert"),
    Scenario("fleet-100", "100 nodes, 5 % with each fault at once (serving CSRs never "
             "approved, approver removed, rotation off, --watch cert expiring, kubelet down "
             "2 weeks), 75 healthy; a sample of each group played; 32 days",
             span=32 * DAY, fleet=_fleet(), expect="one page per node and cause"),
)

# The CI run: the scenarios whose events fall early, each cut to a short span.
REDUCED: dict[str, float] = {
    "serving-never-approved": 1.5 * DAY, "short-lived-1h": DAY, "short-lived-1d": 24 * DAY,
    "self-signed": 60 * DAY, "watch-expiring": 75 * DAY, "interrupted-swap": 60 * DAY,
    "agent-dead-textfile": 100 * DAY, "agent-dead-scrape": 100 * DAY,
    "fleet-100": 32 * DAY, "textfile-full-1d": 52 * DAY, "ca-rotation": 35 * DAY,
    "agent-restart-mid-swap": 10 * DAY,
}


def chosen(names: list[str] | None, reduced_run: bool) -> list[Scenario]:
    """The scenarios to play: all, those named, or the reduced CI set (shortened)."""
    picked = [s for s in SCENARIOS if names is None or s.name in names]
    if not reduced_run:
        return picked
    return [replace(s, span=min(s.span, REDUCED[s.name])) for s in picked
            if s.name in REDUCED]
