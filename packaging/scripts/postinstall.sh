#!/bin/sh
# After install or upgrade. deb: $1 = configure (upgrade: $2 = old version);
# rpm: $1 = 1 on install, 2 on upgrade. Never fails the transaction. Where systemd is not
# running (image builds, containers, CI) a first install only enables the unit, offline, so
# a node booted from a baked image starts the agent; nothing is started.
set -eu

action="${1:-}"
old_version="${2:-}"
case "$action" in
    configure) [ -n "$old_version" ] && mode=upgrade || mode=install ;;
    1) mode=install ;;
    2) mode=upgrade ;;
    *) exit 0 ;;  # abort-upgrade, abort-remove, ...: nothing to do
esac

if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
    if [ "$mode" = install ]; then
        systemctl enable --now kubelet-cert-agent.service >/dev/null 2>&1 \
            || echo "kubelet-cert-agent: could not start the service; see 'systemctl status kubelet-cert-agent'" >&2
    else
        # Only restarts a running service: an operator who stopped it keeps it stopped.
        systemctl try-restart kubelet-cert-agent.service >/dev/null 2>&1 || true
    fi
elif [ "$mode" = install ] && command -v systemctl >/dev/null 2>&1; then
    systemctl enable kubelet-cert-agent.service >/dev/null 2>&1 || true
fi
exit 0
