"""``QgaLibvirtDriver``: Nova's libvirt driver with guest-agent channels.

Enabled in nova.conf with ``[DEFAULT] compute_driver =
qga_libvirt.QgaLibvirtDriver``; Nova's ``load_compute_driver`` imports
``nova.virt.qga_libvirt``, which ``nova_qga.driver_alias`` provides.

The driver changes two things and nothing else:

* ``_get_guest_xml``: every domain definition Nova generates (spawn, hard
  reboot, rescue, resize, revert) goes through the ``[qga] domain_hooks``
  chain before libvirt sees it.
* ``spawn``: files matching ``[qga] strip_injected_files`` are removed from
  the injected files, so neither disk injection nor the config drive
  writes them.

``__init__`` only adds loading the hook chain, so that a bad
``[qga] domain_hooks`` stops nova-compute at start instead of at a spawn.

This is the only module of ``nova_qga`` that imports Nova.
"""

from __future__ import annotations

from typing import Any

import nova.conf
from nova.virt.libvirt import driver as libvirt_driver
from oslo_log import log as logging

from nova_qga import conf as qga_conf
from nova_qga import hook_chain
from nova_qga import injected_files as injected

LOG = logging.getLogger(__name__)
CONF = nova.conf.CONF
qga_conf.register_opts(CONF)


class QgaLibvirtDriver(libvirt_driver.LibvirtDriver):
    """Libvirt driver that runs the domain hooks and strips legacy files."""

    def __init__(self, virtapi: Any, read_only: bool = False) -> None:
        super().__init__(virtapi, read_only)
        self._domain_hooks = hook_chain.HookChain.load(CONF)
        LOG.info('Domain hooks enabled: %s',
                 ', '.join(self._domain_hooks.names) or 'none')

    # The parameters after image_meta are passed through untouched: Nova
    # adds keyword parameters here from release to release (share_info,
    # old_guest) and the hooks need none of them.
    def _get_guest_xml(self, context: Any, instance: Any, network_info: Any,
                       disk_info: Any, image_meta: Any, *args: Any,
                       **kwargs: Any) -> str:
        """Nova's domain XML, with the configured domain hooks applied."""
        xml = super()._get_guest_xml(context, instance, network_info,
                                     disk_info, image_meta, *args, **kwargs)
        return self._domain_hooks.apply(xml, instance, image_meta)

    def spawn(self, context: Any, instance: Any, image_meta: Any,
              injected_files: Any, admin_password: Any, allocations: Any,
              network_info: Any = None, block_device_info: Any = None,
              power_on: bool = True, accel_info: Any = None) -> None:
        """Nova's spawn, minus the injected files of the retired scripts."""
        if injected_files:
            kept, dropped = injected.split_injected_files(
                injected_files, CONF.qga.strip_injected_files)
            if dropped:
                LOG.info('Dropped injected files %(paths)s: they match '
                         '[qga] strip_injected_files', {
                             'paths': ', '.join(dropped)},
                         instance=instance)
                injected_files = kept
        super().spawn(context, instance, image_meta, injected_files,
                      admin_password, allocations, network_info=network_info,
                      block_device_info=block_device_info, power_on=power_on,
                      accel_info=accel_info)
