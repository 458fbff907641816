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

"""Choose how to reach each guest: ``[qga_polling] transport``.

``socket``  the dedicated monitor channel's unix socket, directly;
``libvirt`` the standard channel through libvirt's qemuAgentCommand;
``auto``    the dedicated channel when the domain has one with a socket
            path that the guest has not left disconnected, else the
            standard channel through libvirt.

Callers get a transport and the channel it uses, or None and the reason
(reported as the guest's ``agent_state`` ``no_channel``).

The libvirt transport reaches the agent through the hypervisor the guest
was discovered on (:attr:`~ceilometer_qga.guest.Guest.libvirt_uri`), not
through an option: one URI names the hypervisor, in the discovery plugin's
group, and a second that "must match" it cannot drift.  Its own option,
the size of its thread pool, is in ``[libvirt_transport]``.
"""

from __future__ import annotations

from typing import Any

from oslo_config import cfg

from ceilometer_qga.guest import Channel
from ceilometer_qga.guest import Guest
from ceilometer_qga.guest import STANDARD_CHANNEL
from ceilometer_qga.qga import transport as transport_mod
from ceilometer_qga.qga import transport_socket


class TransportSelector:
    """Builds transports; owns what they share (the libvirt connections).

    One :class:`~ceilometer_qga.libvirt_host.ConnectionProvider` per
    hypervisor URI the guests were discovered on (one, with the libvirt
    discovery), each with ``[libvirt_transport] max_threads`` threads.
    """

    def __init__(self, conf: cfg.ConfigOpts,
                 on_command: transport_mod.CommandObserver | None = None
                 ) -> None:
        self.conf = conf
        #: given to every transport built (``qga-probe`` times commands)
        self.on_command = on_command
        #: URI -> provider, created on first use: libvirt is optional
        self._libvirt: dict[str, Any] = {}

    def make(self, guest: Guest) -> tuple[
            transport_mod.Transport | None, Channel | None, str]:
        """Return (transport, channel, '') or (None, None, reason)."""
        transport, channel, reason = self._make(guest)
        if transport is not None:
            transport.on_command = self.on_command
        return transport, channel, reason

    def _make(self, guest: Guest) -> tuple[
            transport_mod.Transport | None, Channel | None, str]:
        opts = self.conf.qga_polling
        mode = opts.transport
        monitor = guest.channel(opts.monitor_channel_name)
        standard = guest.channel(STANDARD_CHANNEL)
        use_monitor = bool(monitor and monitor.path)
        if (mode == 'auto' and use_monitor and standard is not None
                and monitor.state == 'disconnected'):
            # The image runs only the stock agent: nobody will ever open
            # the dedicated port, so go through libvirt.  Discovery reports
            # the state again each sweep; the poller rebuilds the session
            # when it changes.
            use_monitor = False
        if mode in ('socket', 'auto') and use_monitor:
            return (transport_socket.SocketTransport(
                guest.instance_id, monitor.path, opts.command_timeout,
                opts.max_reply_bytes), monitor, '')
        if mode == 'socket':
            return None, None, ('no %s channel with a socket path'
                                % opts.monitor_channel_name)
        if standard is None:
            return None, None, 'no guest-agent channel'
        if not guest.libvirt_uri:
            return None, None, ('%s channel, but the guest was not found '
                                'through libvirt' % STANDARD_CHANNEL)
        return (self._libvirt_transport(guest, guest.libvirt_uri), standard,
                '')

    def _libvirt_transport(self, guest: Guest,
                           uri: str) -> transport_mod.Transport:
        from ceilometer_qga.qga import transport_libvirt
        provider = self._libvirt.get(uri)
        if provider is None:
            from ceilometer_qga import libvirt_host
            provider = self._libvirt[uri] = libvirt_host.ConnectionProvider(
                uri, self.conf.libvirt_transport.max_threads)
        return transport_libvirt.LibvirtTransport(
            guest.instance_id, provider, guest.instance_id, self.conf)

    def close(self) -> None:
        """Close the shared libvirt connections, if any were opened."""
        providers, self._libvirt = list(self._libvirt.values()), {}
        for provider in providers:
            provider.close()
