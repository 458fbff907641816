# shellcheck shell=bash source-path=SCRIPTDIR
#
# A stand-in for the parts of devstack that devstack/plugin.sh uses, for
# tests/functional/test_devstack_plugin.py.  devstack itself cannot run here
# (it installs a whole cloud), so:
#
# * the ini functions are devstack's own: ini-config next to this file is
#   devstack's inc/ini-config, unchanged (see README.rst);
# * functions that only compute something (is_service_enabled,
#   enable_service, get_python_exec_prefix, get_transport_url,
#   get_notification_url, iniset_rpc_backend, start_nova_compute's copy of
#   nova.conf) do what devstack's do, for the cases the plugin meets;
# * functions that would install packages or start services
#   (setup_install, setup_develop, pip_install, install_package,
#   run_process, stop_process) only record their arguments;
# * sudo records its arguments and runs the command (the tests run as root);
# * openstack stands in for the openstack client talking to Gnocchi: it
#   knows "metric resource-type show|create" and keeps the created types as
#   files in $DEVSTACK_TEST_GNOCCHI_DIR.
#
# Every call is appended to $DEVSTACK_TEST_CALLS as one line: the function
# name and its arguments, separated by tabs.

# shellcheck source=ini-config
source "$(dirname "${BASH_SOURCE[0]}")/ini-config"

function _record {
    local IFS=$'\t'
    echo "$*" >> "$DEVSTACK_TEST_CALLS"
}

function die {
    local line=$1
    shift
    echo "[ERROR] plugin.sh:$line $*" >&2
    exit 1
}

function echo_summary {
    echo "$@"
}

function define_plugin {
    _record define_plugin "$@"
}

function plugin_requires {
    _record plugin_requires "$@"
}

# functions-common: is the service in ENABLED_SERVICES ("nova" stands for
# any n-* service)?  Any of the arguments will do.
function is_service_enabled {
    local service
    for service in "$@"; do
        [[ ",$ENABLED_SERVICES," =~ ,$service, ]] && return 0
        [[ "$service" == "nova" && ",$ENABLED_SERVICES" =~ ,n- ]] && return 0
    done
    return 1
}

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

# inc/python
function get_python_exec_prefix {
    if [[ "$GLOBAL_VENV" == "True" ]]; then
        echo "$DEVSTACK_VENV/bin"
    else
        echo "/usr/local/bin"
    fi
}

function setup_install {
    _record setup_install "$@"
}

function setup_develop {
    _record setup_develop "$@"
}

function pip_install {
    _record pip_install "$@"
}

function install_package {
    _record install_package "$@"
}

# lib/rpc_backend, RabbitMQ only
function get_transport_url {
    local virtual_host=${1:-}
    echo "rabbit://$RABBIT_USERID:$RABBIT_PASSWORD@$RABBIT_HOST:5672/$virtual_host"
}

function get_notification_url {
    local virtual_host=${1:-}
    echo "rabbit://$RABBIT_USERID:$RABBIT_PASSWORD@$RABBIT_HOST:5672/$virtual_host"
}

function iniset_rpc_backend {
    local file=$2
    local section=${3:-DEFAULT}
    local virtual_host=${4:-}
    iniset "$file" "$section" transport_url "$(get_transport_url "$virtual_host")"
}

# functions-common: only enabled services are started or stopped.
function run_process {
    if is_service_enabled "$1"; then
        _record run_process "$@"
    fi
}

function stop_process {
    if is_service_enabled "$1"; then
        _record stop_process "$@"
    fi
}

function sudo {
    _record sudo "$@"
    "$@"
}

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

# lib/nova: start_nova_compute rebuilds nova-cpu.conf from nova.conf (then
# merges local.conf's post-config section for it, which the tests leave
# empty), after the post-config phase and before the extra phase.
function start_nova_compute {
    cp "$NOVA_CONF" "$NOVA_CPU_CONF"
}
