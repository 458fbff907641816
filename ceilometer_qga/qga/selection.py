"""Choose how to reach each guest: ``[qga_polling] transport``.

``socket``  the dedicated monitor channel's unix socket, directly;
``libvirt`` the standard channel through libvirt's qemuAgentCommand;
``auto``    the dedicated channel when the domain has one with a socket
            path that the guest has not left disconnected, else the
            standard channel through libvirt.

Callers get a transport and the channel it uses, or None and the reason
(reported as the guest's ``agent_state`` ``no_channel``).
"""

from __future__ import annotations

from oslo_config import cfg

from ceilometer_qga.guest import Channel
from ceilometer_qga.guest import Guest
from ceilometer_qga.guest import STANDARD_CHANNEL
from ceilometer_qga.qga import transport as transport_mod
from ceilometer_qga.qga import transport_socket


class TransportSelector:
    """Builds transports; owns what they share (the libvirt connection)."""

    def __init__(self, conf: cfg.ConfigOpts,
                 on_command: transport_mod.CommandObserver | None = None
                 ) -> None:
        self.conf = conf
        #: given to every transport built (``qga-probe`` times commands)
        self.on_command = on_command
        self._libvirt = None  # created on first use: libvirt is optional

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
        return self._libvirt_transport(guest), standard, ''

    def _libvirt_transport(self, guest: Guest) -> transport_mod.Transport:
        from ceilometer_qga.qga import transport_libvirt
        if self._libvirt is None:
            from ceilometer_qga import libvirt_host
            self._libvirt = libvirt_host.ConnectionProvider(self.conf)
        return transport_libvirt.LibvirtTransport(
            guest.instance_id, self._libvirt, guest.instance_id, self.conf)

    def close(self) -> None:
        """Close the shared libvirt connection, if one was opened."""
        if self._libvirt is not None:
            self._libvirt.close()
            self._libvirt = None
