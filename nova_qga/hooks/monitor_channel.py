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

"""``monitor_channel``: the dedicated channel the qga poller owns.

libvirt does not connect to this channel, so the poller talks to a second
qemu-ga in the guest directly, off libvirt's per-domain agent lock that
Nova needs for quiesce and set-password.  In the guest the port is
``/dev/virtio-ports/<[qga] monitor_channel_name>``.
"""

from __future__ import annotations

from typing import Any

from lxml import etree
from oslo_log import log as logging

from nova_qga import domain_xml
from nova_qga.hooks import base
from nova_qga import socket_dir

LOG = logging.getLogger(__name__)


class MonitorChannelHook(base.DomainHook):
    """Add ``[qga] monitor_channel_name`` at ``[qga] socket_dir/<uuid>.sock``."""

    def apply(self, domain: etree._Element, instance: Any,
              image_meta: Any) -> None:
        """Add the monitor channel; HookError while the directory is unfit.

        The directory is checked before the channel is added because QEMU
        cannot start a domain whose socket it cannot create: a missing or
        unsafe directory must cost the monitoring, not the instance.
        """
        opts = self.conf.qga
        if domain_xml.channels(domain, opts.monitor_channel_name):
            return
        try:
            socket_dir.check_socket_dir(opts.socket_dir, opts.socket_group)
            path = socket_dir.socket_path(opts.socket_dir, instance.uuid)
        except socket_dir.SocketDirError as exc:
            raise base.HookError('monitor channel left out: %s' % exc)
        domain_xml.ensure_unix_channel(domain, opts.monitor_channel_name,
                                       path)
        LOG.debug('Added monitor channel %(name)s at %(path)s',
                  {'name': opts.monitor_channel_name, 'path': path},
                  instance=instance)
