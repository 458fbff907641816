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

from oslo_config import cfg

from ceilometer_qga.collectors import base
from ceilometer_qga.collectors import checks

#: (meter, statistics key, unit)
COUNTERS = (
    ('guest.network.incoming.bytes', 'rx-bytes', 'B'),
    ('guest.network.outgoing.bytes', 'tx-bytes', 'B'),
    ('guest.network.incoming.packets', 'rx-packets', 'packet'),
    ('guest.network.outgoing.packets', 'tx-packets', 'packet'),
    ('guest.network.incoming.errors', 'rx-errs', 'packet'),
    ('guest.network.outgoing.errors', 'tx-errs', 'packet'),
    ('guest.network.incoming.drops', 'rx-dropped', 'packet'),
    ('guest.network.outgoing.drops', 'tx-dropped', 'packet'),
)

#: most IP addresses copied into an interface's metadata
MAX_ADDRESSES = 16


class NetworkCollector(base.Collector):
    """Cumulative byte/packet/error/drop counters per guest interface."""

    meters = tuple(base.Meter(meter, base.CUMULATIVE, unit, 'interface')
                   for meter, _key, unit in COUNTERS)
    command = 'guest-network-get-interfaces'

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__(conf)
        self._exclude = checks.exclusion(conf, 'interface_exclude')

    def parse(self, reply: Any) -> base.ParseResult:
        """Readings for every interface with statistics, not excluded.

        :raises base.BadReply: the reply is not a list
        """
        result = base.ParseResult()
        interfaces: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        seen: set[str] = set()
        for index, entry in enumerate(checks.entries(reply, self.command)):
            try:
                if not isinstance(entry, dict):
                    raise checks.Nonsense(
                        'interface #%d is not an object (%s)'
                        % (index, checks.show(entry)))
                stats = entry.get('statistics')
                if stats is None:
                    continue
                name = checks.name(entry.get('name'),
                                   'name of interface #%d' % index)
                if checks.is_excluded(self._exclude, name):
                    continue
                if name in seen:
                    raise checks.Nonsense('interface %r is listed twice'
                                          % name)
                seen.add(name)
                if not isinstance(stats, dict):
                    raise checks.Nonsense(
                        'interface %r statistics is not an object (%s)'
                        % (name, checks.show(stats)))
            except checks.Nonsense as exc:
                result.dropped.append(str(exc))
                continue
            interfaces.append((name, stats, _metadata(name, entry)))
        for name, stats, metadata in checks.cap(
                interfaces, self.conf.qga_polling.max_items, 'interfaces',
                result.dropped):
            for meter, key, _unit in COUNTERS:
                try:
                    value = checks.count(stats.get(key),
                                         'interface %r %s' % (name, key))
                except checks.Nonsense as exc:
                    result.dropped.append(str(exc))
                    continue
                result.readings.append(
                    base.Reading(meter, value, name, dict(metadata)))
        return result


def _metadata(name: str, entry: dict[str, Any]) -> dict[str, Any]:
    """vnic_name, mac and up to :data:`MAX_ADDRESSES` IP addresses."""
    metadata: dict[str, Any] = {'vnic_name': name}
    mac = checks.text(entry.get('hardware-address'))
    if mac:
        metadata['mac'] = mac
    addresses = entry.get('ip-addresses')
    if isinstance(addresses, list):
        metadata['ip_addresses'] = checks.strings(
            (a.get('ip-address') for a in addresses if isinstance(a, dict)),
            MAX_ADDRESSES)
    return metadata
