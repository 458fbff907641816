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

"""Guest network-interface counters, from ``guest-network-get-interfaces``.

Each interface may carry a ``statistics`` member (qemu-ga 2.11+; on Linux
the ``/proc/net/dev`` counters, on Windows the adapter's counters).  The
agent reads them only for an interface that has at least one IP address
(qemu ``qga/commands-posix.c``), so an unaddressed interface, like the
``ifb`` devices in the qemu-ga 7.2 capture of the tests, has none; such
interfaces, and those of agents older than 2.11, are skipped quietly.
``rx`` is incoming and ``tx`` outgoing, seen from inside the guest.

Interfaces whose name matches ``[network_collector] exclude`` (by
default ``lo``) are left out before the ``max_items`` cap is applied.

When no interface at all carries statistics (an agent older than 2.11), the
reply is :attr:`~ceilometer_qga.collectors.base.ParseResult.incomplete` and
the engine reads ``/proc/net/dev`` instead, the file qemu-ga itself reads
(``guest_get_network_stats`` in ``qga/commands-posix.c``): after
``name:``, eight receive counters (bytes packets errs drop fifo frame
compressed multicast) then eight transmit counters (bytes packets errs drop
fifo colls carrier compressed).  The file has no MAC or IP addresses, so
those samples carry only ``vnic_name``.
"""

from __future__ import annotations

from typing import Any

from ceilometer_qga.collectors import base
from ceilometer_qga.collectors import checks
from ceilometer_qga.collectors import device_counters

#: most IP addresses copied into an interface's metadata
MAX_ADDRESSES = 16
#: position of each counter after ``name:`` in /proc/net/dev
_NET_DEV = (('rx-bytes', 0), ('rx-packets', 1), ('rx-errs', 2),
            ('rx-dropped', 3), ('tx-bytes', 8), ('tx-packets', 9),
            ('tx-errs', 10), ('tx-dropped', 11))


class NetworkCollector(device_counters.DeviceCounterCollector):
    """Cumulative byte/packet/error/drop counters per guest interface."""

    command = 'guest-network-get-interfaces'
    fallback_file = '/proc/net/dev'
    # Counters: a rate needs a reading in every sweep.
    interval = 0
    device = 'interface'
    stats_member = 'statistics'
    stats_optional = True
    CONFIG_OPTS = [device_counters.exclude_opt(
        r'^lo$', 'interface_exclude', 'network interfaces')]
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

    def parse(self, reply: Any) -> base.ParseResult:
        """Readings per interface; incomplete when none has statistics.

        :raises base.BadReply: the reply is not a list
        """
        result = super().parse(reply)
        if reply and not any(isinstance(entry, dict)
                             and entry.get(self.stats_member) is not None
                             for entry in reply):
            result.incomplete = True
        return result

    def parse_file(self, text: str) -> base.ParseResult:
        """Readings from the text of ``/proc/net/dev``.

        :raises base.BadReply: not text
        """
        return self.parse_entries(device_counters.proc_table(
            text, self.fallback_file, _NET_DEV, 16, self.stats_member,
            name_end=':'))
