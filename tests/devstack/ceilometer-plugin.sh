# shellcheck shell=bash
#
# Stands for Ceilometer's devstack/plugin.sh (openstack/ceilometer commit
# b4ccf2447, 2026-07-21): the file writes, group changes and services of its
# phases that qga-monitor's plugin depends on, in the same phases; no
# Gnocchi, Redis, keystone accounts or rootwrap.  run.sh sources it as
# devstack sources a plugin, in DEVSTACK_PLUGINS order.

if is_service_enabled ceilometer; then
    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        # install_ceilometer (via stack_install_service): the conf dir.
        sudo install -d -o "$STACK_USER" -m 755 "$CEILOMETER_CONF_DIR"
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        # configure_ceilometer: ceilometer.conf, and polling_all.yaml copied
        # over polling.yaml on every stack.
        iniset_rpc_backend ceilometer "$CEILOMETER_CONF"
        iniset "$CEILOMETER_CONF" oslo_messaging_notifications topics notifications
        iniset "$CEILOMETER_CONF" DEFAULT debug "$ENABLE_DEBUG_LOG_LEVEL"
        cp "$DEVSTACK_TEST_CEILOMETER_POLLING_ALL" "$CEILOMETER_CONF_DIR/polling.yaml"
        if [[ "$VIRT_DRIVER" = 'libvirt' ]]; then
            add_user_to_group "$STACK_USER" "$LIBVIRT_GROUP"
        fi
    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        # start_ceilometer: the compute agent in the libvirt group.
        run_process ceilometer-acompute "$CEILOMETER_BIN_DIR/ceilometer-polling --polling-namespaces compute --config-file $CEILOMETER_CONF" "$LIBVIRT_GROUP"
    fi
    if [[ "$1" == "unstack" ]]; then
        stop_process ceilometer-acompute
    fi
fi
