#!/bin/bash
# Build the .deb and the .rpm, then prove the .deb's whole life cycle on THIS machine:
# install, run the installed binary, verify the installed unit, keep a modified conffile
# across an upgrade, and leave nothing behind after a purge. Lint both packages.
#
# Needs root, a Debian-based system, dpkg, rpm, lintian, rpmlint and systemd-analyze
# (.ci/run installs them). Run it with `make package-check` from the repository root.
# The package it installs is purged again on exit, whatever happens.
set -euo pipefail

PKG=kubelet-cert-agent
MAKE="${MAKE:-make}"
VERSION="$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')"
UPGRADE_VERSION="${VERSION}+1"
ARCH="$(dpkg --print-architecture)"
DEB="dist/${PKG}_${VERSION}_${ARCH}.deb"
UPGRADE_DIR="build/upgrade"
UPGRADE_DEB="$UPGRADE_DIR/${PKG}_${UPGRADE_VERSION}_${ARCH}.deb"
CONFFILE="/etc/default/$PKG"
TEXTFILE_DIR="/var/lib/prometheus/node-exporter"
WANTS_LINK="/etc/systemd/system/multi-user.target.wants/$PKG.service"
LEFTOVERS=("/opt/$PKG" "$CONFFILE" "/usr/bin/$PKG" "/lib/systemd/system/$PKG.service" "$WANTS_LINK"
           "/usr/lib/systemd/system/$PKG.service" "/usr/share/doc/$PKG" "/usr/share/$PKG"
           "$TEXTFILE_DIR/kubelet_cert_agent.prom")

step() { printf '\n==> package-check: %s\n' "$*"; }
fail() { printf 'package-check FAILED: %s\n' "$*" >&2; exit 1; }
installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null)" = installed ]; }
# Installed, half-installed or removed with its conffiles kept: anything but gone.
present() {
    local status
    status="$(dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null)" || return 1
    [ -n "$status" ] && [ "$status" != not-installed ]
}

[ "$(id -u)" -eq 0 ] || fail "must run as root (it installs and purges the .deb)"
for tool in dpkg rpm lintian rpmlint systemd-analyze; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (see .ci/run)"
done
if present; then
    fail "$PKG is already installed here; purge it first (dpkg --purge $PKG)"
fi

WORK="$(mktemp -d)"
cleanup() {
    if present; then
        dpkg --purge "$PKG" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

step "build $DEB and the .rpm (version $VERSION, from pyproject.toml)"
rm -f dist/"${PKG}"_*.deb dist/"${PKG}"-*.rpm
"$MAKE" --no-print-directory deb rpm
RPM="$(ls dist/"${PKG}-${VERSION}"-1.*.rpm)"
[ -f "$DEB" ] || fail "$DEB was not built"

step "build the upgrade package $UPGRADE_DEB"
rm -rf "$UPGRADE_DIR"
"$MAKE" --no-print-directory deb VERSION="$UPGRADE_VERSION" DIST="$UPGRADE_DIR"
[ -f "$UPGRADE_DEB" ] || fail "$UPGRADE_DEB was not built"

step "lintian $DEB (errors and warnings fail; overrides: packaging/deb/lintian-overrides)"
lintian --fail-on error,warning --tag-display-limit 0 "$DEB"

step "inspect $RPM"
# Outputs are captured before grep -q reads them: grep -q exits at the first match, and
# with pipefail the writer's SIGPIPE would fail the pipeline.
rpm -qpi "$RPM"
rpm -qp --requires "$RPM"
rpm_files="$(rpm -qlp "$RPM")"
grep -v '^/opt/kubelet-cert-agent/lib/' <<<"$rpm_files"
rpm -qp --scripts "$RPM"
grep -qx "$CONFFILE" <<<"$(rpm -qcp "$RPM")" || fail "$CONFFILE is not a config file in the rpm"
grep -qx "cn $CONFFILE" <<<"$(rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$RPM")" \
    || fail "$CONFFILE is not %config(noreplace) in the rpm"
for f in /usr/bin/$PKG /usr/lib/systemd/system/$PKG.service /opt/$PKG/bin/$PKG \
         /usr/share/$PKG/kubernetes/rbac.yaml /usr/share/doc/$PKG/LICENSE; do
    grep -qx "$f" <<<"$rpm_files" || fail "$f missing from the rpm"
done

step "rpmlint $RPM (errors and warnings fail; filters: packaging/rpmlint.toml)"
rpmlint -c packaging/rpmlint.toml "$RPM" | tee "$WORK/rpmlint.out"
grep -q ' 0 errors, 0 warnings' "$WORK/rpmlint.out" || fail "rpmlint reported problems"

step "install $DEB (no systemd running here: the scripts must succeed and enable the unit)"
dpkg -i "$DEB" </dev/null
installed || fail "$PKG is not installed after dpkg -i"
grep -q "^ *$CONFFILE\b" <<<"$(dpkg-query --control-show "$PKG" conffiles)" || fail "$CONFFILE is not a conffile"
# Enabled offline, so a node booted from an image built this way starts the agent.
[ -L "$WANTS_LINK" ] || fail "install without a running systemd did not enable the unit"

step "run the installed binary"
out="$("/usr/bin/$PKG" --version)"
echo "$out"
[ "$out" = "$PKG $VERSION" ] || fail "--version printed '$out', expected '$PKG $VERSION'"
"/usr/bin/$PKG" demo "$WORK/demo"
rc=0
"/usr/bin/$PKG" check --offline --no-probe --cert-dir "$WORK/demo/pki" --kubelet-config "$WORK/demo/config.yaml" \
    --node-name demo-node-1 || rc=$?
# Nagios codes: 0-2 are verdicts about the demo node; 3 (UNKNOWN) means the agent broke.
[ "$rc" -le 2 ] || fail "installed check exited $rc"
rc=0
"/usr/bin/$PKG" check --offline --no-probe --format json --cert-dir "$WORK/demo/pki" \
    --kubelet-config "$WORK/demo/config.yaml" --node-name demo-node-1 >"$WORK/status.json" || rc=$?
[ "$rc" -le 2 ] || fail "installed check --format json exited $rc"
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["certificates"], d' \
    "$WORK/status.json" || fail "check --format json did not report the demo's certificates"
[ -z "$(find "/opt/$PKG" -newer "$DEB" -name '*.pyc' -print -quit)" ] \
    || fail "running the agent wrote byte-code into /opt/$PKG"

step "systemd-analyze verify / security on the INSTALLED unit"
systemd-analyze verify "/lib/systemd/system/$PKG.service"
systemd-analyze security --offline=yes "/lib/systemd/system/$PKG.service" | tail -1

step "modify $CONFFILE, then upgrade to $UPGRADE_VERSION with stdin closed"
marker="# package-check: local change $$"
echo "$marker" >>"$CONFFILE"
timeout 600 dpkg --force-confold -i "$UPGRADE_DEB" </dev/null
[ "$(dpkg-query -W -f='${Version}' "$PKG")" = "$UPGRADE_VERSION" ] || fail "upgrade did not happen"
grep -qxF "$marker" "$CONFFILE" || fail "the upgrade overwrote the modified $CONFFILE"
"/usr/bin/$PKG" --version >/dev/null || fail "binary broken after the upgrade"

step "purge and check nothing is left behind"
if [ -d "$TEXTFILE_DIR" ]; then
    echo "kubelet_cert_agent_up 1" >"$TEXTFILE_DIR/kubelet_cert_agent.prom"  # as the daemon would
fi
dpkg --purge "$PKG" </dev/null
! present || fail "$PKG still known to dpkg after purge"
for path in "${LEFTOVERS[@]}"; do
    [ ! -e "$path" ] && [ ! -L "$path" ] || fail "$path left behind after purge"
done

step "all package checks passed ($DEB, $RPM)"
