#!/bin/sh
# Before removal. deb: $1 = remove (upgrade: $1 = upgrade); rpm: $1 = 0 on removal,
# 1 on upgrade. Stops and disables the service only on a real removal; an upgrade
# restarts it from postinstall instead. Never fails the transaction.
set -eu

case "${1:-}" in
    remove|0) ;;
    *) exit 0 ;;
esac

if [ -d /run/systemd/system ]; then
    systemctl stop kubelet-cert-agent.service >/dev/null 2>&1 || true
fi
# disable works without a running systemd (it only removes the wants/ symlinks).
if command -v systemctl >/dev/null 2>&1; then
    systemctl disable kubelet-cert-agent.service >/dev/null 2>&1 || true
fi
exit 0
