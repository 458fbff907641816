# shellcheck shell=bash source-path=SCRIPTDIR
#
# A stand-in for the parts of devstack that devstack/plugin.sh uses, for
# tests/functional/test_devstack_plugin.py.  devstack itself cannot run here
# (it installs a whole cloud).  Each function below says in its first
# comment line which devstack function it stands for and how it differs.
#
# * devstack's own files, unchanged: ini-config (inc/ini-config) and
#   meta-config (inc/meta-config, the local.conf merge), see README.rst;
# * functions that install really install, with pip, into real venvs;
# * run_process records the command (its systemd unit, user and group are
#   reproduced by tests/e2e/test_devstack_socket_permissions.py);
# * sudo runs the command (the tests run as root, like sudo would);
# * openstack stands in for the openstack client talking to Gnocchi.
#
# Every call of a stand-in is appended to $DEVSTACK_TEST_CALLS as one line:
# the function name and its arguments, separated by tabs.

# shellcheck source=ini-config
source "$(dirname "${BASH_SOURCE[0]}")/ini-config"
# shellcheck source=meta-config
source "$(dirname "${BASH_SOURCE[0]}")/meta-config"

function _record {
    local IFS=$'\t'
    echo "$*" >> "$DEVSTACK_TEST_CALLS"
}

# functions-common die: same message format, no stack trace.
function die {
    local line=$1
    shift
    echo "[ERROR] plugin.sh:$line $*" >&2
    exit 1
}

# functions-common warn: same, to stderr.
function warn {
    local line=$1
    shift
    echo "[WARNING] $line $*" >&2
}

# functions-common echo_summary: without devstack's log file.
function echo_summary {
    echo "$@"
}

# functions-common define_plugin: a no-op in devstack too; recorded.
function define_plugin {
    _record define_plugin "$@"
}

# functions-common plugin_requires: a no-op in devstack too (zuul's
# local.conf writer reads it to order plugins); recorded.
function plugin_requires {
    _record plugin_requires "$@"
}

# functions-common is_plugin_enabled: the same test on DEVSTACK_PLUGINS.
function is_plugin_enabled {
    [[ ",${DEVSTACK_PLUGINS}," =~ ,${1}, ]]
}

# functions-common is_service_enabled: ENABLED_SERVICES only ("nova" stands
# for any n-* service); devstack also knows the other aggregate names.
function is_service_enabled {
    local service
    for service in "$@"; do
        [[ ",$ENABLED_SERVICES," =~ ,$service, ]] && return 0
        [[ "$service" == "nova" && ",$ENABLED_SERVICES" =~ ,n- ]] && return 0
        [[ "$service" == "ceilometer" && ",$ENABLED_SERVICES" =~ ,ceilometer- ]] && return 0
    done
    return 1
}

# functions-common enable_service: the same, without the aggregate names.
function enable_service {
    local service
    for service in "$@"; do
        if [[ ",${DISABLED_SERVICES:-}," =~ ,$service, ]]; then
            continue
        fi
        if ! is_service_enabled "$service"; then
            ENABLED_SERVICES+=",$service"
        fi
    done
    ENABLED_SERVICES=${ENABLED_SERVICES#,}
}

# functions-common GetOSVersion: os_VENDOR from /etc/os-release's NAME's
# first word (devstack uses lsb_release -i, which gives the same words),
# or DEVSTACK_TEST_OS_VENDOR to stand for another distribution.
function GetOSVersion {
    if [[ -n "${DEVSTACK_TEST_OS_VENDOR:-}" ]]; then
        os_VENDOR=$DEVSTACK_TEST_OS_VENDOR
    else
        # shellcheck disable=SC1091,SC2153
        os_VENDOR=$(. /etc/os-release && echo "${NAME%% *}")
    fi
    case "$os_VENDOR" in
        Debian|Ubuntu) os_PACKAGE=deb ;;
        *) os_PACKAGE=rpm ;;
    esac
}

# functions-common is_fedora: the same vendor list, shortened.
function is_fedora {
    [[ -n "${os_VENDOR:-}" ]] || GetOSVersion
    [[ "$os_VENDOR" =~ ^(Fedora|Red|RedHatEnterpriseServer|CentOS|Rocky|AlmaLinux|openEuler)$ ]]
}

# functions-common is_ubuntu: true for every deb-based system, as there.
function is_ubuntu {
    [[ -n "${os_PACKAGE:-}" ]] || GetOSVersion
    [[ "$os_PACKAGE" == "deb" ]]
}

# functions-common add_user_to_group: devstack's own body (real usermod).
function add_user_to_group {
    local user=$1
    local group=$2
    _record add_user_to_group "$@"
    sudo usermod -a -G "$group" "$user"
}

# inc/python: PROJECT_VENV, filled from DEVSTACK_TEST_PROJECT_VENVS
# ("nova=/path ceilometer=/path") as lib/nova and Ceilometer's plugin fill
# it when USE_VENV=True.
declare -A -g PROJECT_VENV
for _pv in ${DEVSTACK_TEST_PROJECT_VENVS:-}; do
    # shellcheck disable=SC2034
    PROJECT_VENV[${_pv%%=*}]=${_pv#*=}
done
unset _pv

# inc/python get_python_exec_prefix: the same.
function get_python_exec_prefix {
    if [[ "$GLOBAL_VENV" == "True" ]]; then
        echo "$DEVSTACK_VENV/bin"
    else
        echo "/usr/local/bin"
    fi
}

# inc/python pip_install: the same choice of pip (PIP_VIRTUAL_ENV, else
# DEVSTACK_VENV with GLOBAL_VENV=True), really installing; differs in
# --no-deps --no-build-isolation (the venvs inherit the test venv's
# packages; no upper-constraints), in refusing the system interpreter
# (devstack's last resort, sudo pip), and in installing
# $DEVSTACK_TEST_WHEEL, built once per test session from $QGA_MONITOR_DIR,
# when asked to install that directory non-editable (skipped when that
# very wheel is what the venv has already: tests stack many times).
function pip_install {
    _record pip_install "${PIP_VIRTUAL_ENV:-}" "$@"
    local cmd_pip
    if [[ -n ${PIP_VIRTUAL_ENV:=} && -d ${PIP_VIRTUAL_ENV} ]]; then
        cmd_pip=$PIP_VIRTUAL_ENV/bin/python
    elif [[ "${GLOBAL_VENV}" == "True" && -d ${DEVSTACK_VENV} ]]; then
        cmd_pip=$DEVSTACK_VENV/bin/python
    else
        die $LINENO "pip_install stand-in: no venv (PIP_VIRTUAL_ENV=$PIP_VIRTUAL_ENV, DEVSTACK_VENV=$DEVSTACK_VENV)"
    fi
    local -a args=("$@")
    local stamp=${cmd_pip%/bin/python}/.devstack-test-wheel wheel_id=""
    if [[ "${args[*]}" == "$QGA_MONITOR_DIR" && -n "${DEVSTACK_TEST_WHEEL:-}" ]]; then
        args=("$DEVSTACK_TEST_WHEEL")
        wheel_id=$(sha256sum "$DEVSTACK_TEST_WHEEL")
        if [[ -f "$stamp" && "$(cat "$stamp")" == "$wheel_id" ]]; then
            return 0
        fi
    fi
    rm -f "$stamp"
    "$DEVSTACK_TEST_PIP" --python "$cmd_pip" install -q --no-deps --no-build-isolation \
        --force-reinstall "${args[@]}"
    if [[ -n "$wheel_id" ]]; then
        echo "$wheel_id" > "$stamp"
    fi
}

# inc/python setup_install: setup_package without bindep and edit-constraints.
function setup_install {
    _record setup_install "$@"
    pip_install "$1"
}

# inc/python setup_develop: the same, editable.
function setup_develop {
    _record setup_develop "$@"
    pip_install -e "$1"
}

# functions-common install_package: records only (no distro packages here).
function install_package {
    _record install_package "$@"
}

# lib/rpc_backend get_transport_url: RabbitMQ only.
function get_transport_url {
    local virtual_host=${1:-}
    echo "rabbit://$RABBIT_USERID:$RABBIT_PASSWORD@$RABBIT_HOST:5672/$virtual_host"
}

# lib/rpc_backend get_notification_url: RabbitMQ only.
function get_notification_url {
    local virtual_host=${1:-}
    echo "rabbit://$RABBIT_USERID:$RABBIT_PASSWORD@$RABBIT_HOST:5672/$virtual_host"
}

# lib/rpc_backend iniset_rpc_backend: the transport_url line only.
function iniset_rpc_backend {
    local file=$2
    local section=${3:-DEFAULT}
    local virtual_host=${4:-}
    iniset "$file" "$section" transport_url "$(get_transport_url "$virtual_host")"
}

# functions-common run_process: enabled services only; records instead of
# writing and starting a systemd unit (User=$STACK_USER, Group=$3), which
# tests/e2e/test_devstack_socket_permissions.py reproduces with setpriv.
function run_process {
    if is_service_enabled "$1"; then
        _record run_process "$@"
    fi
}

# functions-common stop_process: records only (the test stops what
# run_process started, by pid).
function stop_process {
    if is_service_enabled "$1"; then
        _record stop_process "$@"
    fi
}

# sudo: runs the command (as root, which the tests are).
function sudo {
    _record sudo "$@"
    "$@"
}

# The openstack client, for "metric resource-type show|create" only; the
# created types are files in $DEVSTACK_TEST_GNOCCHI_DIR.
function openstack {
    _record openstack "$@"
    if [[ "$1 $2" != "metric resource-type" ]]; then
        echo "openstack stand-in: unsupported command: $*" >&2
        return 2
    fi
    local action=$3
    local name=${!#}
    case "$action" in
        show)
            [[ -f "$DEVSTACK_TEST_GNOCCHI_DIR/$name" ]]
            ;;
        create)
            if [[ -f "$DEVSTACK_TEST_GNOCCHI_DIR/$name" ]]; then
                echo "Resource type $name already exists (HTTP 409)" >&2
                return 1
            fi
            local IFS=$'\t'
            echo "${*:4}" > "$DEVSTACK_TEST_GNOCCHI_DIR/$name"
            ;;
        *)
            echo "openstack stand-in: unsupported action: $action" >&2
            return 2
            ;;
    esac
}

# lib/nova start_nova_compute: only its configuration steps, as there:
# nova-cpu.conf is nova.conf plus local.conf's [[post-config|$NOVA_CPU_CONF]];
# nova-compute itself is not started.
function start_nova_compute {
    _record start_nova_compute
    cp "$NOVA_CONF" "$NOVA_CPU_CONF"
    merge_config_file "$TOP_DIR/local.conf" post-config "\$NOVA_CPU_CONF"
}
