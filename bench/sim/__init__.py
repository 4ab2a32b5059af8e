"""A simulated kubelet year, judged by the agent's real code and the real rule engine.

Modules: :mod:`world` (virtual time, scenario description), :mod:`cluster` (signer,
approver, CSR store), :mod:`kubelet` (client-go's certificate manager and the kubelet's
file store on a real temp dir), :mod:`agent` (the agent's real snapshot, checks and
collector at each instant), :mod:`series` (exposition text -> sparse samples ->
OpenMetrics), :mod:`engine` (promtool backfill + a real Prometheus evaluating the shipped
rules), :mod:`oracle` (the truth and the score), :mod:`scenarios`, :mod:`run`.
Entry point: ``bench/bench_alerts.py``.
"""
