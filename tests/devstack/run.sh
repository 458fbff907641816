#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# Run the enabled plugins the way stack.sh, unstack.sh and clean.sh run
# them, with the stand-in functions of functions.sh:
#
#   run.sh STEP...
#
# STEP is MODE:PHASE ("stack:install", "stack:post-config", ...), a bare
# MODE ("unstack", "clean") or "start_nova_compute" (lib/nova's step between
# post-config and extra).  For each step every plugin of DEVSTACK_PLUGINS
# runs, in that order, as devstack's run_plugins does: "qga-monitor" is
# devstack/plugin.sh, "ceilometer" is ceilometer-plugin.sh (Ceilometer's
# plugin's file writes).  As in stack.sh, every plugin's settings are
# sourced first (load_plugin_settings), "stack:post-config" is followed by
# the merge of local.conf's [[post-config|...]] sections
# (merge_config_group, devstack's own), and "stack:extra" is preceded by
# the merge of its [[extra|...]] sections.  One shell runs every step, with
# errexit and nounset on.  The environment carries what local.conf, stackrc
# and lib/* would have set (the test sets it); local.conf is
# $TOP_DIR/local.conf.
set -o errexit
set -o nounset

: "${QGA_MONITOR_DIR:?QGA_MONITOR_DIR must point at the repository}"
HERE=$(dirname "${BASH_SOURCE[0]}")

# shellcheck source=functions.sh
source "$HERE/functions.sh"

function _plugin_file {
    if [[ "$1" == "qga-monitor" ]]; then
        echo "$QGA_MONITOR_DIR/devstack/plugin.sh"
    else
        echo "$HERE/$1-plugin.sh"
    fi
}

# load_plugin_settings: Ceilometer's settings are variables the test sets.
# shellcheck source=../../devstack/settings
source "$QGA_MONITOR_DIR/devstack/settings"

function run_plugins {
    local plugin
    for plugin in ${DEVSTACK_PLUGINS//,/ }; do
        # shellcheck disable=SC1090
        source "$(_plugin_file "$plugin")" "$@"
    done
}

for step in "$@"; do
    case "$step" in
        start_nova_compute)
            start_nova_compute
            ;;
        stack:extra)
            merge_config_group "$TOP_DIR/local.conf" extra
            run_plugins stack extra
            merge_config_group "$TOP_DIR/local.conf" post-extra
            ;;
        stack:post-config)
            run_plugins stack post-config
            merge_config_group "$TOP_DIR/local.conf" post-config
            ;;
        *:*)
            run_plugins "${step%%:*}" "${step#*:}"
            ;;
        *)
            run_plugins "$step"
            ;;
    esac
done
