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
#  * .venv-dib holds diskimage-builder (dib-requirements.txt), the same
#    way;
#  * .venv-glance holds Glance, the image service of the Nova cloud test
#    (glance-requirements.txt), the same way;
#  * .venv-neutron holds Neutron, the network service of the Nova cloud
#    test (neutron-requirements.txt), the same way;
#  * .venv-aetos holds Aetos, the project-scoping proxy in front of
#    Prometheus (aetos-requirements.txt), the same way;
#  * the package itself is re-installed every run (a few seconds), and NOT
#    editable: the tests load the compute driver through the wheel's
#    qga-monitor-nova-driver.pth, as an operator's install does.
# Output of the steps goes to a log and is shown only when a step fails.
#
# Environment: PYTHON (default /usr/bin/python3, Debian's interpreter, which
# python3-venv and python3-dev belong to), VENV (default .venv),
# GNOCCHI_VENV (default .venv-gnocchi), AETOS_VENV (default .venv-aetos),
# DIB_VENV (default .venv-dib), GLANCE_VENV (default .venv-glance),
# NEUTRON_VENV (default .venv-neutron).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
VENV=${VENV:-$ROOT/.venv}
STAMP=$VENV/.requirements.sha256
GNOCCHI_VENV=${GNOCCHI_VENV:-$ROOT/.venv-gnocchi}
AETOS_VENV=${AETOS_VENV:-$ROOT/.venv-aetos}
AODH_VENV=${AODH_VENV:-$ROOT/.venv-aodh}
DIB_VENV=${DIB_VENV:-$ROOT/.venv-dib}
GLANCE_VENV=${GLANCE_VENV:-$ROOT/.venv-glance}
NEUTRON_VENV=${NEUTRON_VENV:-$ROOT/.venv-neutron}
LOG=$(mktemp /tmp/install_deps.XXXXXX.log)
trap 'rm -f "$LOG"' EXIT

APT_PACKAGES=(
    qemu-guest-agent libvirt-dev pkg-config rabbitmq-server
    python3-venv python3-dev gcc shellcheck
    qemu-system-x86 libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
    busybox-static e2fsprogs
    postgresql libpq-dev
    mariadb-server
    prometheus
    mmdebstrap qemu-utils genisoimage
    sudo debootstrap kpartx
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

want=$(cat requirements.txt test-requirements.txt doc/requirements.txt \
    | sha256sum | cut -d' ' -f1)
have=$(cat "$STAMP" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
    echo "install_deps: pip install -r requirements.txt -r test-requirements.txt" \
         "(a few minutes the first time)"
    quietly "$VENV/bin/pip" install -q --upgrade pip setuptools wheel
    quietly "$VENV/bin/pip" install -q -r requirements.txt -r test-requirements.txt
    echo "$want" > "$STAMP"
fi

# A virtualenv of its own for a service the tests run (Gnocchi, Aetos,
# Aodh), so
# that its dependencies cannot change the versions of Nova and Ceilometer
# in .venv: built once, and again only when its requirements file changes.
service_venv() {  # service_venv REQUIREMENTS-FILE VENV
    local requirements=$1 venv=$2 want have
    if [ ! -x "$venv/bin/python" ]; then
        echo "install_deps: creating $venv"
        quietly "$PYTHON" -m venv "$venv"
        rm -f "$venv/.requirements.sha256"
    fi
    want=$(sha256sum "$requirements" | cut -d' ' -f1)
    have=$(cat "$venv/.requirements.sha256" 2>/dev/null || true)
    if [ "$want" != "$have" ]; then
        echo "install_deps: pip install -r $requirements into $venv" \
             "(about a minute the first time)"
        quietly "$venv/bin/pip" install -q --upgrade pip setuptools wheel
        quietly "$venv/bin/pip" install -q -r "$requirements"
        echo "$want" > "$venv/.requirements.sha256"
    fi
}
service_venv gnocchi-requirements.txt "$GNOCCHI_VENV"
service_venv aetos-requirements.txt "$AETOS_VENV"
# The real Aodh of the alarm tests (tests/fixtures/aodh.py).
service_venv aodh-requirements.txt "$AODH_VENV"
# diskimage-builder, which builds the guest-side e2e image with our element
# (tests/fixtures/build_dib_image.py; it also needs sudo, debootstrap and
# kpartx from the list above).
service_venv dib-requirements.txt "$DIB_VENV"
# The real Glance of the Nova cloud test (tests/fixtures/nova_cloud.py).
service_venv glance-requirements.txt "$GLANCE_VENV"
# The real Neutron of the Nova cloud test (tests/fixtures/nova_cloud.py).
service_venv neutron-requirements.txt "$NEUTRON_VENV"

# pbr takes the version from git; every dependency is in the venv already,
# so no isolated build environment needs to be fetched.
# A stale build/ (from an earlier tree) would put removed modules back
# into the wheel.
rm -rf build
quietly "$VENV/bin/pip" install -q --no-deps --no-build-isolation --force-reinstall .
