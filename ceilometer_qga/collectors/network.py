"""Guest network-interface counters, from ``guest-network-get-interfaces``.

Each interface may carry a ``statistics`` member (qemu-ga 2.11+; on Linux
the ``/proc/net/dev`` counters, on Windows the adapter's counters).  The
agent reads them only for an interface that has at least one IP address
(qemu ``qga/commands-posix.c``), so an unaddressed interface, like the
``ifb`` devices in the qemu-ga 7.2 capture of the tests, has none; such
interfaces, and those of agents older than 2.11, are skipped quietly.
``rx`` is incoming and ``tx`` outgoing, seen from inside the guest.

Interfaces whose name matches ``[qga_polling] interface_exclude`` (by
default ``lo``) are left out before the ``max_items`` cap is applied.
"""

from __future__ import annotations

from typing import Any

from ceilometer_qga.collectors import checks
from ceilometer_qga.collectors import device_counters

#: most IP addresses copied into an interface's metadata
MAX_ADDRESSES = 16


class NetworkCollector(device_counters.DeviceCounterCollector):
    """Cumulative byte/packet/error/drop counters per guest interface."""

    command = 'guest-network-get-interfaces'
    device = 'interface'
    stats_member = 'statistics'
    stats_optional = True
    exclude_option = 'interface_exclude'
    scope = 'interface'
    counters = (
        ('guest.network.incoming.bytes', 'rx-bytes', 1, 'B'),
        ('guest.network.outgoing.bytes', 'tx-bytes', 1, 'B'),
        ('guest.network.incoming.packets', 'rx-packets', 1, 'packet'),
        ('guest.network.outgoing.packets', 'tx-packets', 1, 'packet'),
        ('guest.network.incoming.errors', 'rx-errs', 1, 'packet'),
        ('guest.network.outgoing.errors', 'tx-errs', 1, 'packet'),
        ('guest.network.incoming.drops', 'rx-dropped', 1, 'packet'),
        ('guest.network.outgoing.drops', 'tx-dropped', 1, 'packet'),
    )

    def metadata(self, name: str, entry: dict[str, Any]) -> dict[str, Any]:
        """vnic_name, mac and up to :data:`MAX_ADDRESSES` IP addresses."""
        metadata: dict[str, Any] = {'vnic_name': name}
        mac = checks.text(entry.get('hardware-address'))
        if mac:
            metadata['mac'] = mac
        addresses = entry.get('ip-addresses')
        if isinstance(addresses, list):
            metadata['ip_addresses'] = checks.strings(
                (a.get('ip-address') for a in addresses
                 if isinstance(a, dict)), MAX_ADDRESSES)
        return metadata
