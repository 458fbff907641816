#!/bin/bash
# shellcheck shell=bash
#
# devstack plugin of qga-monitor: a Nova libvirt driver that gives every
# instance QEMU guest-agent channels, and a poller that turns what the guest
# agents report into Ceilometer samples.  In local.conf, after Ceilometer
# (whose variables and files this plugin reads):
#
#   [[local|localrc]]
#   enable_plugin ceilometer https://opendev.org/openstack/ceilometer
#   enable_plugin qga-monitor https://opendev.org/x/qga-monitor
#   QGA_MONITOR_MODE=standalone      # or ceilometer
#   QGA_MONITOR_CHANNEL=dedicated    # or standard
#
# Variables: devstack/settings.  What each phase does: devstack/README.rst.
#
# devstack sources this file as "plugin.sh MODE [PHASE]" into its own
# shell.  The variables and functions it uses but does not define are
# devstack's (stackrc, functions-common, inc/ini-config, inc/python,
# lib/nova, lib/rpc_backend, ceilometer's plugin settings):
#   STACK_USER NOVA_CONF VIRT_DRIVER LIBVIRT_GROUP PYTHON
#   ENABLE_DEBUG_LOG_LEVEL CEILOMETER_CONF CEILOMETER_CONF_DIR
#   iniset iniget inidelete iniset_rpc_backend get_notification_url
#   is_service_enabled run_process stop_process setup_install
#   get_python_exec_prefix echo_summary die
# and it runs sudo and the openstack client (OS_CLOUD=devstack-admin) as
# devstack does.  tests/functional/test_devstack_plugin.py runs it.

# Save trace setting
_XTRACE_QGA_MONITOR=$(set +o | grep xtrace)
set -o xtrace

QGA_MONITOR_COMPUTE_DRIVER=qga_libvirt.QgaLibvirtDriver
QGA_MONITOR_POLLING_SOURCE=$QGA_MONITOR_DIR/etc/ceilometer/polling.yaml
QGA_MONITOR_GNOCCHI_RESOURCES=$QGA_MONITOR_DIR/etc/ceilometer/gnocchi_resources.yaml


# Helpers
# -------

function _qga_monitor_python {
    # devstack's interpreter (the global venv's with GLOBAL_VENV=True),
    # which has PyYAML; unstack.sh and clean.sh may not set PYTHON.
    echo "${PYTHON:-python3}"
}

function _qga_monitor_ceilometer_conf_dir {
    echo "${CEILOMETER_CONF_DIR:-/etc/ceilometer}"
}

function _qga_monitor_ceilometer_conf {
    echo "${CEILOMETER_CONF:-$(_qga_monitor_ceilometer_conf_dir)/ceilometer.conf}"
}

# The nova_qga domain hooks of the channel mode ([qga] domain_hooks).
function _qga_monitor_domain_hooks {
    if [[ "$QGA_MONITOR_CHANNEL" == "dedicated" ]]; then
        echo "agent_channel,monitor_channel"
    else
        echo "agent_channel"
    fi
}

# How the poller reaches the agents ([qga_polling] transport).
function _qga_monitor_transport {
    if [[ "$QGA_MONITOR_CHANNEL" == "dedicated" ]]; then
        echo "auto"
    else
        echo "libvirt"
    fi
}

# The user QEMU runs as, who creates the channel sockets.
function _qga_monitor_qemu_user {
    local user
    if [[ -n "$QGA_MONITOR_QEMU_USER" ]]; then
        echo "$QGA_MONITOR_QEMU_USER"
        return 0
    fi
    for user in libvirt-qemu qemu; do
        if getent passwd "$user" >/dev/null; then
            echo "$user"
            return 0
        fi
    done
    die $LINENO "No QEMU user (libvirt-qemu, qemu) on this host: set QGA_MONITOR_QEMU_USER"
}

# The telemetry secret to sign with; empty means Ceilometer's default.
function _qga_monitor_telemetry_secret {
    local ceilometer_conf
    ceilometer_conf=$(_qga_monitor_ceilometer_conf)
    if [[ -n "$QGA_MONITOR_TELEMETRY_SECRET" ]]; then
        echo "$QGA_MONITOR_TELEMETRY_SECRET"
    elif [[ -f "$ceilometer_conf" ]]; then
        iniget "$ceilometer_conf" publisher telemetry_secret
    fi
}

function qga_monitor_check_settings {
    case "$QGA_MONITOR_MODE" in
        standalone|ceilometer) ;;
        *) die $LINENO "QGA_MONITOR_MODE must be standalone or ceilometer, not '$QGA_MONITOR_MODE'" ;;
    esac
    case "$QGA_MONITOR_CHANNEL" in
        dedicated|standard) ;;
        *) die $LINENO "QGA_MONITOR_CHANNEL must be dedicated or standard, not '$QGA_MONITOR_CHANNEL'" ;;
    esac
    if ! [[ "$QGA_MONITOR_INTERVAL" =~ ^[1-9][0-9]*$ ]]; then
        die $LINENO "QGA_MONITOR_INTERVAL must be a positive number of seconds, not '$QGA_MONITOR_INTERVAL'"
    fi
    if is_service_enabled n-cpu; then
        if [[ "$VIRT_DRIVER" != "libvirt" ]]; then
            die $LINENO "qga-monitor needs VIRT_DRIVER=libvirt, not '$VIRT_DRIVER'"
        fi
        if [[ "$QGA_MONITOR_MODE" == "ceilometer" ]]; then
            if ! is_service_enabled ceilometer-acompute; then
                die $LINENO "QGA_MONITOR_MODE=ceilometer needs Ceilometer's compute agent: enable_plugin ceilometer (before qga-monitor) and the ceilometer-acompute service"
            fi
            if is_service_enabled qga-polling; then
                die $LINENO "QGA_MONITOR_MODE=ceilometer: disable the qga-polling service, or every guest is polled twice"
            fi
        fi
    elif is_service_enabled qga-polling; then
        die $LINENO "the qga-polling service runs on compute nodes only (n-cpu is not enabled)"
    fi
}


# Phases
# ------

# install: the package, and the socket directory of the dedicated channels.
function install_qga_monitor {
    # Not setup_develop: the package puts nova/virt/qga_libvirt into Nova's
    # own package directory (compute_driver = qga_libvirt...), which an
    # editable install cannot do.
    setup_install "$QGA_MONITOR_DIR"

    if is_service_enabled n-cpu && [[ "$QGA_MONITOR_CHANNEL" == "dedicated" ]]; then
        local qemu_user
        qemu_user=$(_qga_monitor_qemu_user)
        # setgid, so the sockets QEMU creates get the poller's group; no
        # access for others: whoever opens a socket talks to that guest.
        sudo install -d -o "$qemu_user" -g "$LIBVIRT_GROUP" -m 2770 "$QGA_MONITOR_SOCKET_DIR"
    fi
}

# post-config, Nova: runs before nova-compute starts; lib/nova's
# start_nova_compute then copies nova.conf into nova-cpu.conf.
function _qga_monitor_configure_nova {
    iniset "$NOVA_CONF" DEFAULT compute_driver "$QGA_MONITOR_COMPUTE_DRIVER"
    iniset "$NOVA_CONF" qga domain_hooks "$(_qga_monitor_domain_hooks)"
    iniset "$NOVA_CONF" qga monitor_channel_name "$QGA_MONITOR_CHANNEL_NAME"
    iniset "$NOVA_CONF" qga socket_dir "$QGA_MONITOR_SOCKET_DIR"
    iniset "$NOVA_CONF" qga socket_group "$LIBVIRT_GROUP"
}

# post-config: qga-polling.conf, written afresh on every stack (the
# service's, and qga-probe's with --config-file).
function _qga_monitor_write_polling_conf {
    local secret nova_host
    sudo install -d -o "$STACK_USER" -m 0750 "$QGA_MONITOR_CONF_DIR"
    rm -f "$QGA_MONITOR_CONF"
    iniset "$QGA_MONITOR_CONF" DEFAULT debug "$ENABLE_DEBUG_LOG_LEVEL"
    iniset_rpc_backend qga-monitor "$QGA_MONITOR_CONF" DEFAULT
    iniset "$QGA_MONITOR_CONF" oslo_messaging_notifications transport_url "$(get_notification_url)"
    iniset "$QGA_MONITOR_CONF" qga_polling discovery libvirt
    iniset "$QGA_MONITOR_CONF" qga_polling publishers notifier://
    iniset "$QGA_MONITOR_CONF" qga_polling interval "$QGA_MONITOR_INTERVAL"
    iniset "$QGA_MONITOR_CONF" qga_polling transport "$(_qga_monitor_transport)"
    iniset "$QGA_MONITOR_CONF" qga_polling monitor_channel_name "$QGA_MONITOR_CHANNEL_NAME"
    secret=$(_qga_monitor_telemetry_secret)
    if [[ -n "$secret" ]]; then
        iniset "$QGA_MONITOR_CONF" publisher telemetry_secret "$secret"
    fi
    # The compute host's name as Nova knows it, when nova.conf sets one
    # (instance_host and hostId in the samples); else the host name.
    nova_host=$(iniget "$NOVA_CONF" DEFAULT host)
    if [[ -n "$nova_host" ]]; then
        iniset "$QGA_MONITOR_CONF" DEFAULT host "$nova_host"
    fi
}

# post-config, Ceilometer's notification agent: our Gnocchi resource
# definitions, which Ceilometer finds in its configuration directory.
function _qga_monitor_configure_gnocchi_resources {
    cp "$QGA_MONITOR_GNOCCHI_RESOURCES" "$(_qga_monitor_ceilometer_conf_dir)/gnocchi_resources.yaml"
}

# post-config, Ceilometer's compute agent, which finds our pollsters in the
# shared environment and polls "*": in ceilometer mode our source in
# polling.yaml and the poller options in ceilometer.conf; in standalone
# mode our meters out of polling.yaml, or qga-polling and Ceilometer would
# both poll every guest.
function _qga_monitor_configure_ceilometer_polling {
    local polling_yaml ceilometer_conf tool
    polling_yaml=$(_qga_monitor_ceilometer_conf_dir)/polling.yaml
    ceilometer_conf=$(_qga_monitor_ceilometer_conf)
    tool=$QGA_MONITOR_DIR/devstack/files/polling_yaml.py
    if [[ ! -f "$polling_yaml" ]]; then
        die $LINENO "$polling_yaml is missing: enable_plugin ceilometer before qga-monitor"
    fi
    if [[ "$QGA_MONITOR_MODE" == "ceilometer" ]]; then
        "$(_qga_monitor_python)" "$tool" add "$polling_yaml" "$QGA_MONITOR_POLLING_SOURCE" \
            --interval "$QGA_MONITOR_INTERVAL"
        iniset "$ceilometer_conf" qga_polling transport "$(_qga_monitor_transport)"
        iniset "$ceilometer_conf" qga_polling monitor_channel_name "$QGA_MONITOR_CHANNEL_NAME"
    else
        "$(_qga_monitor_python)" "$tool" exclude "$polling_yaml" "$QGA_MONITOR_POLLING_SOURCE"
    fi
}

function configure_qga_monitor {
    if is_service_enabled n-cpu; then
        _qga_monitor_configure_nova
        _qga_monitor_write_polling_conf
    fi
    if [[ -n "$QGA_MONITOR_TELEMETRY_SECRET" && -f "$(_qga_monitor_ceilometer_conf)" ]]; then
        iniset "$(_qga_monitor_ceilometer_conf)" publisher telemetry_secret "$QGA_MONITOR_TELEMETRY_SECRET"
    fi
    if is_service_enabled ceilometer-anotification; then
        _qga_monitor_configure_gnocchi_resources
    fi
    if is_service_enabled ceilometer-acompute; then
        _qga_monitor_configure_ceilometer_polling
    fi
}

# extra: Gnocchi is up (Ceilometer's extra phase ran ceilometer-upgrade);
# create the resource types it does not have yet.  Uses the openstack
# client as devstack does (OS_CLOUD=devstack-admin).
function _qga_monitor_create_resource_types {
    local commands line
    local -a command
    commands=$("$(_qga_monitor_python)" "$QGA_MONITOR_DIR/tools/gnocchi_resource_types.py")
    while IFS= read -r line; do
        [[ -n "$line" ]] || continue
        read -r -a command <<< "$line"
        if [[ "${command[0]}" != "openstack" ]]; then
            die $LINENO "unexpected command from gnocchi_resource_types.py: $line"
        fi
        # The last word is the resource type.
        if ! openstack metric resource-type show "${command[-1]}" >/dev/null 2>&1; then
            openstack "${command[@]:1}"
        fi
    done <<< "$commands"
}

function start_qga_monitor {
    if is_service_enabled gnocchi-api; then
        _qga_monitor_create_resource_types
    fi
    # Group $LIBVIRT_GROUP: read-write libvirt and the sockets of the
    # dedicated channels.  Enabled by settings in standalone mode only.
    run_process qga-polling "$(get_python_exec_prefix)/qga-polling --config-file $QGA_MONITOR_CONF" "$LIBVIRT_GROUP"
}

function stop_qga_monitor {
    stop_process qga-polling
}

# clean: what this plugin wrote.  nova.conf goes with /etc/nova (clean.sh);
# Ceilometer's own clean, which runs first, usually empties its directory.
function cleanup_qga_monitor {
    local conf_dir polling_yaml ceilometer_conf
    conf_dir=$(_qga_monitor_ceilometer_conf_dir)
    polling_yaml=$conf_dir/polling.yaml
    ceilometer_conf=$(_qga_monitor_ceilometer_conf)
    sudo rm -rf "$QGA_MONITOR_CONF_DIR" "$QGA_MONITOR_SOCKET_DIR"
    if cmp -s "$QGA_MONITOR_GNOCCHI_RESOURCES" "$conf_dir/gnocchi_resources.yaml"; then
        rm -f "$conf_dir/gnocchi_resources.yaml"
    fi
    if [[ -f "$polling_yaml" ]]; then
        "$(_qga_monitor_python)" "$QGA_MONITOR_DIR/devstack/files/polling_yaml.py" \
            remove "$polling_yaml" "$QGA_MONITOR_POLLING_SOURCE"
    fi
    if [[ -f "$ceilometer_conf" ]]; then
        inidelete "$ceilometer_conf" qga_polling transport
        inidelete "$ceilometer_conf" qga_polling monitor_channel_name
    fi
}


# Main dispatcher
# ---------------

_qga_monitor_mode=${1:-}
_qga_monitor_phase=${2:-}
if [[ "$_qga_monitor_mode" == "stack" ]]; then
    case "$_qga_monitor_phase" in
        pre-install)
            qga_monitor_check_settings
            ;;
        install)
            echo_summary "Installing qga-monitor"
            qga_monitor_check_settings
            install_qga_monitor
            ;;
        post-config)
            echo_summary "Configuring qga-monitor"
            configure_qga_monitor
            ;;
        extra)
            echo_summary "Starting qga-monitor"
            start_qga_monitor
            ;;
    esac
elif [[ "$_qga_monitor_mode" == "unstack" ]]; then
    stop_qga_monitor
elif [[ "$_qga_monitor_mode" == "clean" ]]; then
    cleanup_qga_monitor
fi

# Restore xtrace
$_XTRACE_QGA_MONITOR
