#!/bin/sh
# After removal. deb: $1 = remove or purge (upgrade: $1 = upgrade); rpm: $1 = 0 on
# removal (rpm has no purge: its removal is the purge), 1 on upgrade.
# On purge, removes what the agent wrote at run time. Never fails the transaction.
set -eu

case "${1:-}" in
    purge|0)
        rm -f /var/lib/prometheus/node-exporter/kubelet_cert_agent.prom
        # Temp files of an interrupted atomic textfile write (never end in .prom).
        rm -f /var/lib/prometheus/node-exporter/.kubelet_cert_agent.*.tmp
        # Anything Python may have left in the venv (byte-code written outside the service).
        rm -rf /opt/kubelet-cert-agent
        ;;
esac

case "${1:-}" in
    remove|purge|0)
        if [ -d /run/systemd/system ]; then
            systemctl daemon-reload >/dev/null 2>&1 || true
        fi
        ;;
esac
exit 0
