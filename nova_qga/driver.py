# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""``QgaLibvirtDriver``: Nova's libvirt driver with guest-agent channels.

Enabled in nova.conf with ``[DEFAULT] compute_driver =
qga_libvirt.QgaLibvirtDriver``; Nova's ``load_compute_driver`` imports
``nova.virt.qga_libvirt``, which ``nova_qga.driver_alias`` provides.

The driver changes three things and nothing else:

* ``_get_guest_xml``: every domain definition Nova generates (spawn, hard
  reboot, rescue, resize, revert) goes through the ``[qga] domain_hooks``
  chain before libvirt sees it.
* ``spawn``: files matching ``[qga] strip_injected_files`` are removed from
  the injected files, so neither disk injection nor the config drive
  writes them.
* ``_can_quiesce`` and ``set_admin_password``: Nova enables the guest
  agent only for images with ``hw_qemu_guest_agent=yes``; for the features
  in ``[qga] nova_agent_features`` an instance whose domain has the standard
  ``org.qemu.guest_agent.0`` channel counts as agent-enabled too.  libvirt
  talks to the agent on that channel only, so nothing is ever sent through
  the dedicated monitor channel.  Whatever goes wrong afterwards (the agent
  does not answer) takes Nova's own path for an agent that does not
  answer: an INFO line and an unquiesced snapshot, or an error when the
  image sets ``os_require_quiesce``.

``__init__`` only adds loading the hook chain, so that a bad
``[qga] domain_hooks`` stops nova-compute at start instead of at a spawn.

This module and :mod:`nova_qga.domain_xml` (Nova's
``LibvirtConfigGuestChannel``) are the modules of ``nova_qga`` that import
Nova; :mod:`nova_qga.conf` imports nothing of it.
"""

from __future__ import annotations

import threading
from typing import Any

from lxml import etree
import nova.conf
from nova import exception
from nova.i18n import _
from nova.virt.libvirt import driver as libvirt_driver
from oslo_log import log as logging

from nova_qga import conf as qga_conf
from nova_qga import hook_chain
from nova_qga import injected_files as injected

LOG = logging.getLogger(__name__)
CONF = nova.conf.CONF
qga_conf.register_opts(CONF)

#: The virt types whose domains have virtio-serial channels (as in Nova's
#: _can_quiesce and _can_set_admin_password).
_AGENT_VIRT_TYPES = ('kvm', 'qemu')


class AgentChannelUnusable(exception.QemuGuestAgentNotEnabled):
    """The instance's standard agent channel cannot carry Nova's request.

    A subclass of Nova's own exception, so that every caller that handles
    an image without ``hw_qemu_guest_agent`` (``_live_snapshot``,
    ``_volume_snapshot_create``, the compute manager's quiesce, the API's
    ``snapshot_volume_backed``) handles this the same way.
    """

    msg_fmt = _('QEMU guest agent is not enabled: %(reason)s')


class QgaLibvirtDriver(libvirt_driver.LibvirtDriver):
    """Libvirt driver: domain hooks, no legacy files, agent by channel."""

    def __init__(self, virtapi: Any, read_only: bool = False) -> None:
        super().__init__(virtapi, read_only)
        # Per thread (per greenthread under eventlet): the instance whose
        # set_admin_password passed the channel check.
        self._agent_ok = threading.local()
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

    def _can_quiesce(self, instance: Any, image_meta: Any) -> None:
        """Nova's check, or the standard agent channel of the domain."""
        try:
            super()._can_quiesce(instance, image_meta)
        except exception.QemuGuestAgentNotEnabled:
            if 'quiesce' not in CONF.qga.nova_agent_features:
                raise
            self._check_agent_channel(instance)

    def unquiesce(self, context: Any, instance: Any, image_meta: Any) -> None:
        """Nova's thaw, sent even if the port was reported closed since.

        A guest that was frozen must be asked to thaw whatever libvirt
        reports about the port meanwhile; only the channel must be there.
        """
        self._agent_ok.thawing = True
        try:
            super().unquiesce(context, instance, image_meta)
        finally:
            self._agent_ok.thawing = False

    def set_admin_password(self, instance: Any, new_pass: str) -> None:
        """Nova's, for a domain with the channel when set_password is on."""
        image_meta = instance.image_meta
        if ('set_password' not in CONF.qga.nova_agent_features or
                CONF.libvirt.virt_type not in _AGENT_VIRT_TYPES or
                image_meta.properties.get('hw_qemu_guest_agent', False)):
            return super().set_admin_password(instance, new_pass)
        self._check_agent_channel(instance)
        self._agent_ok.uuid = instance.uuid
        try:
            return super().set_admin_password(instance, new_pass)
        finally:
            self._agent_ok.uuid = None

    def _can_set_admin_password(self, image_meta: Any) -> None:
        """Nova's check, unless set_admin_password found the channel."""
        if getattr(self._agent_ok, 'uuid', None) is not None:
            return
        super()._can_set_admin_password(image_meta)

    def _check_agent_channel(self, instance: Any) -> None:
        """Raise AgentChannelUnusable unless libvirt can reach the agent.

        Reads the live domain XML: the standard channel must be there, and
        must not be marked ``state="disconnected"`` (libvirt marks the
        agent channel connected or disconnected from QEMU's
        VSERPORT_CHANGE events, i.e. whether the guest has the port open).
        Without the state attribute, and for a thaw, the agent's own answer
        decides, as for an image with ``hw_qemu_guest_agent=yes``.
        """
        name = qga_conf.STANDARD_CHANNEL_NAME
        try:
            xml = self._host.get_guest(instance).get_xml_desc()
            domain = etree.fromstring(
                xml.encode('utf-8'),
                parser=etree.XMLParser(resolve_entities=False,
                                       no_network=True))
        except Exception as exc:
            raise AgentChannelUnusable(
                reason='cannot read the domain of instance %s: %s'
                % (instance.uuid, exc))
        targets = [target for target in
                   domain.iterfind('devices/channel/target')
                   if target.get('name') == name]
        if not targets:
            raise AgentChannelUnusable(
                reason='the domain has no %s channel and the image does not '
                       'set hw_qemu_guest_agent' % name)
        if (targets[0].get('state') == 'disconnected' and
                not getattr(self._agent_ok, 'thawing', False)):
            raise AgentChannelUnusable(
                reason='no agent in the guest has %s open' % name)
