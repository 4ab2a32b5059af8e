#!/bin/bash
# Build the self-contained virtual environment that the packages install at PREFIX.
#
# The venv is built in a staging directory (build/venv) with the TARGET's interpreter
# (default /usr/bin/python3.11, which Debian 12 and RHEL 9's python3.11 package both
# provide), then made to believe it lives at PREFIX: pyvenv.cfg, the script shebangs and
# the byte-code's file names are rewritten. Every dependency is fetched by pip here, at
# build time; installing the package needs no network.
#
# Usage: packaging/build-venv.sh [STAGE]     (run from the repository root)
# Environment: PYTHON (interpreter the package will use), PREFIX (install location).
set -euo pipefail

PYTHON="${PYTHON:-/usr/bin/python3.11}"
PREFIX="${PREFIX:-/opt/kubelet-cert-agent}"
STAGE="${1:-build/venv}"

if [ ! -f pyproject.toml ]; then
    echo "build-venv: run me from the repository root" >&2
    exit 2
fi
if [ ! -x "$PYTHON" ]; then
    echo "build-venv: $PYTHON not found; set PYTHON to the target distribution's python3.11" >&2
    exit 2
fi

rm -rf "$STAGE" build/wheels build/lib build/bdist.*
mkdir -p "$(dirname "$STAGE")"
"$PYTHON" -m venv "$STAGE"
STAGE_ABS="$(cd "$STAGE" && pwd)"

# Our own wheel first (built from this tree, not an editable install), then the
# dependencies from the index, preferring manylinux wheels to compiling sdists.
"$STAGE/bin/python" -m pip wheel -q --no-deps --wheel-dir build/wheels .
"$STAGE/bin/python" -m pip install -q --no-compile --prefer-binary build/wheels/kubelet_cert_agent-*.whl

# The installed package needs neither pip nor setuptools, nor the activate scripts.
"$STAGE/bin/python" -m pip uninstall -q -y pip setuptools
# Only our entry point stays in bin/ (the dependencies' console scripts are not needed).
find "$STAGE/bin" -type f ! -name kubelet-cert-agent -delete
# direct_url.json records the build directory: meaningless on the target.
find "$STAGE/lib" -name direct_url.json -delete
find "$STAGE" -name __pycache__ -prune -exec rm -rf {} +
# Modules are not scripts: some wheels ship them executable.
find "$STAGE/lib" -type f -name '*.py' -perm /111 -exec chmod a-x {} +
# Debug symbols of the wheels' extension modules are useless on a node (and a third of
# the size); stripping leaves the dynamic symbols Python needs.
if command -v strip >/dev/null; then
    find "$STAGE/lib" -type f -name '*.so' -exec strip --strip-unneeded {} +
fi

# Relocate: every script's shebang and pyvenv.cfg point at PREFIX and the system python.
for script in "$STAGE"/bin/*; do
    if [ -f "$script" ] && [ ! -L "$script" ] && head -c 2 "$script" | grep -q '^#!'; then
        sed -i "1s|^#!.*python.*$|#!$PREFIX/bin/python3|" "$script"
    fi
done
py_home="$(dirname "$PYTHON")"
py_version="$("$PYTHON" -c 'import platform; print(platform.python_version())')"
cat > "$STAGE/pyvenv.cfg" <<EOF
home = $py_home
include-system-site-packages = false
version = $py_version
executable = $PYTHON
command = $PYTHON -m venv $PREFIX
EOF

# Byte-code compiled once here, recording the installed paths, and valid without checking
# source mtimes (the service runs with a read-only /opt and must never write __pycache__).
"$STAGE/bin/python" -m compileall -q -j 0 --invalidation-mode unchecked-hash \
    -s "$STAGE_ABS" -p "$PREFIX" "$STAGE/lib"

if grep -rIl --exclude-dir=__pycache__ "$STAGE_ABS" "$STAGE" >/dev/null; then
    echo "build-venv: the staging path still appears in:" >&2
    grep -rIl --exclude-dir=__pycache__ "$STAGE_ABS" "$STAGE" >&2
    exit 1
fi
echo "build-venv: $STAGE ready for $PREFIX ($PYTHON $py_version)"
