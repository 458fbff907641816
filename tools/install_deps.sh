#!/bin/bash
# Install everything `make demo` and `make test` need on Debian 12, as root.
#
# Idempotent and silent when there is nothing to do:
#  * apt packages are installed only when dpkg says they are missing, and
#    `apt-get update` runs only then;
#  * .venv is created once; the requirement files are installed again only
#    when their content changed (a hash stamp in .venv);
#  * .venv-gnocchi holds the real Gnocchi the functional tests store samples
#    in (gnocchi-requirements.txt): a virtualenv of its own, so that its
#    dependencies cannot change the versions Nova and Ceilometer are tested
#    with; built once (about a minute: uwsgi
#    and psycopg2 compile) and again only when that file changes;
#  * the package itself is re-installed every run (a few seconds), and NOT
#    editable: the tests load the compute driver through the wheel's
#    qga-monitor-nova-driver.pth, as an operator's install does.
# Output of the steps goes to a log and is shown only when a step fails.
#
# Environment: PYTHON (default /usr/bin/python3, Debian's interpreter, which
# python3-venv and python3-dev belong to), VENV (default .venv),
# GNOCCHI_VENV (default .venv-gnocchi).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
VENV=${VENV:-$ROOT/.venv}
STAMP=$VENV/.requirements.sha256
GNOCCHI_VENV=${GNOCCHI_VENV:-$ROOT/.venv-gnocchi}
GNOCCHI_STAMP=$GNOCCHI_VENV/.requirements.sha256
LOG=$(mktemp /tmp/install_deps.XXXXXX.log)
trap 'rm -f "$LOG"' EXIT

APT_PACKAGES=(
    qemu-guest-agent libvirt-dev pkg-config rabbitmq-server
    python3-venv python3-dev gcc shellcheck
    qemu-system-x86 libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
    busybox-static e2fsprogs
    postgresql libpq-dev
    mmdebstrap qemu-utils genisoimage
)

# Run a step with its output in $LOG; print the log and fail when it fails.
quietly() {
    if ! "$@" >"$LOG" 2>&1; then
        echo "install_deps: failed: $*" >&2
        cat "$LOG" >&2
        exit 1
    fi
}

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != "installed" ]; then
        missing+=("$pkg")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install_deps: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    quietly apt-get update
    quietly apt-get install -y --no-install-recommends "${missing[@]}"
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
if [ ! -x "$VENV/bin/python" ]; then
    echo "install_deps: creating $VENV"
    quietly "$PYTHON" -m venv "$VENV"
    rm -f "$STAMP"
fi

want=$(cat requirements.txt test-requirements.txt | sha256sum | cut -d' ' -f1)
have=$(cat "$STAMP" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
    echo "install_deps: pip install -r requirements.txt -r test-requirements.txt" \
         "(a few minutes the first time)"
    quietly "$VENV/bin/pip" install -q --upgrade pip setuptools wheel
    quietly "$VENV/bin/pip" install -q -r requirements.txt -r test-requirements.txt
    echo "$want" > "$STAMP"
fi

if [ ! -x "$GNOCCHI_VENV/bin/python" ]; then
    echo "install_deps: creating $GNOCCHI_VENV"
    quietly "$PYTHON" -m venv "$GNOCCHI_VENV"
    rm -f "$GNOCCHI_STAMP"
fi
want=$(sha256sum gnocchi-requirements.txt | cut -d' ' -f1)
have=$(cat "$GNOCCHI_STAMP" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
    echo "install_deps: pip install -r gnocchi-requirements.txt into $GNOCCHI_VENV" \
         "(about a minute the first time)"
    quietly "$GNOCCHI_VENV/bin/pip" install -q --upgrade pip setuptools wheel
    quietly "$GNOCCHI_VENV/bin/pip" install -q -r gnocchi-requirements.txt
    echo "$want" > "$GNOCCHI_STAMP"
fi

# pbr takes the version from git; every dependency is in the venv already,
# so no isolated build environment needs to be fetched.
# A stale build/ (from an earlier tree) would put removed modules back
# into the wheel.
rm -rf build
quietly "$VENV/bin/pip" install -q --no-deps --no-build-isolation --force-reinstall .
