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
#   STACK_USER NOVA_CONF NOVA_CPU_CONF VIRT_DRIVER LIBVIRT_GROUP PYTHON
#   ENABLE_DEBUG_LOG_LEVEL CEILOMETER_CONF CEILOMETER_CONF_DIR
#   DEVSTACK_PLUGINS USE_VENV PROJECT_VENV os_VENDOR
#   iniset iniget inidelete ini_has_option iniset_rpc_backend
#   get_notification_url is_service_enabled is_plugin_enabled is_fedora
#   GetOSVersion run_process stop_process setup_install add_user_to_group
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

# The value of KEY in libvirt's qemu.conf ("user", "group"), quotes
# stripped; empty when it is not set.  qemu.conf is root's (mode 0600 on
# Debian), hence sudo.
function _qga_monitor_qemu_conf_get {
    local key=$1
    if ! sudo test -r "$QGA_MONITOR_QEMU_CONF"; then
        return 0
    fi
    sudo sed -n -e "s/^[[:space:]]*${key}[[:space:]]*=[[:space:]]*\"\{0,1\}\([^\"#[:space:]]*\).*/\1/p" \
        "$QGA_MONITOR_QEMU_CONF" | tail -n 1
}

# NAME of a user or group ("passwd" or "group" database) given as qemu.conf
# does: a name, or "+ID"; dies when it does not exist.
function _qga_monitor_id_name {
    local database=$1
    local value=$2
    local entry
    if ! entry=$(getent "$database" "${value#+}"); then
        die $LINENO "QEMU's $database '$value' (qemu.conf $QGA_MONITOR_QEMU_CONF or the distribution's default) does not exist on this host: set QGA_MONITOR_QEMU_USER / QGA_MONITOR_SOCKET_GROUP"
    fi
    echo "${entry%%:*}"
}

# The user QEMU runs as, who owns the sockets libvirt creates for it.
function _qga_monitor_qemu_user {
    local user=${QGA_MONITOR_QEMU_USER:-$(_qga_monitor_qemu_conf_get user)}
    if [[ -z "$user" ]]; then
        if is_fedora; then
            user=qemu
        else
            user=libvirt-qemu
        fi
    fi
    _qga_monitor_id_name passwd "$user"
}

# The group QEMU runs as: libvirt's DAC driver gives every mode='bind'
# channel socket this group (mode 0664), so the poller must be in it.
function _qga_monitor_qemu_group {
    local group=${QGA_MONITOR_SOCKET_GROUP:-$(_qga_monitor_qemu_conf_get group)}
    if [[ -z "$group" ]]; then
        [[ -n "${os_VENDOR:-}" ]] || GetOSVersion
        if is_fedora; then
            group=qemu
        elif [[ "$os_VENDOR" == "Ubuntu" ]]; then
            group=kvm
        else
            group=libvirt-qemu
        fi
    fi
    _qga_monitor_id_name group "$group"
}

# The telemetry secret to sign with; empty means Ceilometer's default.
# Called at extra, after local.conf's post-config merge: ceilometer.conf's
# final value, which Ceilometer verifies with, comes first.
function _qga_monitor_telemetry_secret {
    local ceilometer_conf secret=""
    ceilometer_conf=$(_qga_monitor_ceilometer_conf)
    if [[ -f "$ceilometer_conf" ]]; then
        secret=$(iniget "$ceilometer_conf" publisher telemetry_secret)
    fi
    echo "${secret:-$QGA_MONITOR_TELEMETRY_SECRET}"
}

# Ceilometer's plugin must run first (see plugin_requires in settings):
# devstack runs plugins in DEVSTACK_PLUGINS order, and Ceilometer's
# post-config copies polling_all.yaml over polling.yaml on every stack.
function _qga_monitor_check_plugin_order {
    local plugins=",$DEVSTACK_PLUGINS,"
    if ! is_plugin_enabled ceilometer; then
        if [[ "$QGA_MONITOR_MODE" == "ceilometer" ]]; then
            die $LINENO "QGA_MONITOR_MODE=ceilometer needs Ceilometer's devstack plugin: enable_plugin ceilometer (before qga-monitor)"
        fi
        return 0
    fi
    if [[ ! "${plugins%%,qga-monitor,*}," =~ ,ceilometer, ]]; then
        die $LINENO "enable_plugin ceilometer must come before enable_plugin qga-monitor in local.conf (DEVSTACK_PLUGINS=$DEVSTACK_PLUGINS): Ceilometer's post-config would undo qga-monitor's polling.yaml edits"
    fi
}

# USE_VENV=True: the project venvs that load our code: Nova's (the driver)
# and Ceilometer's (the pollsters), wherever those services run here.
function _qga_monitor_project_venvs {
    local project
    [[ "${USE_VENV:-False}" == "True" ]] || return 0
    for project in nova ceilometer; do
        if [[ "$project" == "nova" ]] && ! is_service_enabled n-cpu; then
            continue
        fi
        if [[ "$project" == "ceilometer" ]] && ! is_service_enabled ceilometer-acompute; then
            continue
        fi
        if [[ -z "${PROJECT_VENV[$project]:-}" || ! -d "${PROJECT_VENV[$project]}" ]]; then
            die $LINENO "USE_VENV=True but $project's venv (PROJECT_VENV[$project]='${PROJECT_VENV[$project]:-}') does not exist"
        fi
        echo "${PROJECT_VENV[$project]}"
    done
}

function qga_monitor_check_settings {
    _qga_monitor_check_plugin_order
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

# install: the package (into devstack's environment, and with USE_VENV=True
# into Nova's and Ceilometer's venvs too), and the socket directory of the
# dedicated channels.
function install_qga_monitor {
    local venv venvs
    # (die in a command substitution only ends the subshell)
    venvs=$(_qga_monitor_project_venvs) || exit 1
    # Not editable, so that the wheel's qga-monitor-nova-driver.pth (which
    # makes compute_driver = qga_libvirt... load) is installed as built.
    setup_install "$QGA_MONITOR_DIR"
    for venv in $venvs; do
        PIP_VIRTUAL_ENV=$venv setup_install "$QGA_MONITOR_DIR"
    done

    if is_service_enabled n-cpu && [[ "$QGA_MONITOR_CHANNEL" == "dedicated" ]]; then
        local qemu_user qemu_group
        qemu_user=$(_qga_monitor_qemu_user)
        qemu_group=$(_qga_monitor_qemu_group)
        # Nothing for others: whoever opens a socket talks to that guest.
        sudo install -d -o "$qemu_user" -g "$qemu_group" -m 2770 "$QGA_MONITOR_SOCKET_DIR"
        # The poller (qga-polling or ceilometer-acompute, both run as
        # $STACK_USER by systemd, which takes the user's groups from
        # /etc/group) connects to sockets of QEMU's group, mode 0664.
        add_user_to_group "$STACK_USER" "$qemu_group"
    fi
}

# post-config, Nova: runs before nova-compute starts; lib/nova's
# start_nova_compute then copies nova.conf into nova-cpu.conf.
function _qga_monitor_configure_nova {
    iniset "$NOVA_CONF" DEFAULT compute_driver "$QGA_MONITOR_COMPUTE_DRIVER"
    iniset "$NOVA_CONF" qga domain_hooks "$(_qga_monitor_domain_hooks)"
    iniset "$NOVA_CONF" qga monitor_channel_name "$QGA_MONITOR_CHANNEL_NAME"
    iniset "$NOVA_CONF" qga socket_dir "$QGA_MONITOR_SOCKET_DIR"
    if [[ "$QGA_MONITOR_CHANNEL" == "dedicated" ]]; then
        iniset "$NOVA_CONF" qga socket_group "$(_qga_monitor_qemu_group)"
    fi
}

# post-config: qga-polling.conf, written afresh on every stack (the
# service's, and qga-probe's with --config-file), before local.conf's
# [[post-config|$QGA_MONITOR_CONF]] sections are merged into it.
function _qga_monitor_write_polling_conf {
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
}

# extra: what qga-polling.conf takes from other services' files, read now
# that stack.sh has merged local.conf's post-config sections into them
# (and lib/nova has made nova-cpu.conf): the telemetry secret, and the
# compute host's name as Nova knows it (instance_host and hostId in the
# samples).  A value local.conf set in qga-polling.conf itself stays.
function _qga_monitor_finish_polling_conf {
    local secret nova_file nova_host
    if ! ini_has_option "$QGA_MONITOR_CONF" publisher telemetry_secret; then
        secret=$(_qga_monitor_telemetry_secret)
        if [[ -n "$secret" ]]; then
            iniset "$QGA_MONITOR_CONF" publisher telemetry_secret "$secret"
        fi
    fi
    if ! ini_has_option "$QGA_MONITOR_CONF" DEFAULT host; then
        nova_file=$NOVA_CONF
        if [[ -f "${NOVA_CPU_CONF:-}" ]]; then
            nova_file=$NOVA_CPU_CONF
        fi
        nova_host=$(iniget "$nova_file" DEFAULT host)
        if [[ -n "$nova_host" ]]; then
            iniset "$QGA_MONITOR_CONF" DEFAULT host "$nova_host"
        fi
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
    commands=$("$(get_python_exec_prefix)/qga-gnocchi-resource-types")
    while IFS= read -r line; do
        [[ -n "$line" ]] || continue
        read -r -a command <<< "$line"
        if [[ "${command[0]}" != "openstack" ]]; then
            die $LINENO "unexpected command from qga-gnocchi-resource-types: $line"
        fi
        # The last word is the resource type.
        if ! openstack metric resource-type show "${command[-1]}" >/dev/null 2>&1; then
            openstack "${command[@]:1}"
        fi
    done <<< "$commands"
}

function start_qga_monitor {
    if is_service_enabled n-cpu; then
        _qga_monitor_finish_polling_conf
    fi
    if is_service_enabled gnocchi-api; then
        _qga_monitor_create_resource_types
    fi
    # Group $LIBVIRT_GROUP: read-write libvirt; QEMU's group, for the
    # sockets of the dedicated channels, is one of $STACK_USER's (install).
    # Enabled by settings in standalone mode only.
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
