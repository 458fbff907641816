#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# Run devstack/plugin.sh the way devstack runs it, with the stand-in
# functions of functions.sh:
#
#   run.sh STEP...
#
# STEP is MODE:PHASE ("stack:install", "stack:post-config", ...), a bare
# MODE ("unstack", "clean") or "start_nova_compute" (lib/nova's step between
# post-config and extra).  Like stack.sh, one shell runs every step, with
# errexit on, after sourcing the plugin's settings; unstack.sh and clean.sh
# are separate runs.  nounset is on too, so that the plugin relies on no
# variable devstack does not set.  The environment carries what local.conf,
# stackrc and lib/* would have set (the test sets it).
set -o errexit
set -o nounset

: "${QGA_MONITOR_DIR:?QGA_MONITOR_DIR must point at the repository}"

# shellcheck source=functions.sh
source "$(dirname "${BASH_SOURCE[0]}")/functions.sh"
# shellcheck source=../../devstack/settings
source "$QGA_MONITOR_DIR/devstack/settings"

for step in "$@"; do
    case "$step" in
        start_nova_compute)
            start_nova_compute
            ;;
        *:*)
            # shellcheck source=../../devstack/plugin.sh
            source "$QGA_MONITOR_DIR/devstack/plugin.sh" "${step%%:*}" "${step#*:}"
            ;;
        *)
            # shellcheck source=../../devstack/plugin.sh
            source "$QGA_MONITOR_DIR/devstack/plugin.sh" "$step"
            ;;
    esac
done
