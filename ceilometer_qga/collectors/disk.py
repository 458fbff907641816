"""Guest block-device I/O counters, from ``guest-get-diskstats``.

The agent (qemu-ga 7.1+, Linux guests) returns ``/proc/diskstats`` as a
list of ``{name, major, minor, stats{read-ios, read-sectors, write-ios,
write-sectors, ...}}``.  Sectors are the kernel's fixed 512-byte units
whatever the device's real sector size, so bytes = sectors * 512.

Devices whose name matches ``[qga_polling] disk_exclude`` (by default loop,
ram, zram, floppy and CD-ROM devices) are left out before the
``max_items`` cap is applied.
"""

from __future__ import annotations

from typing import Any

from oslo_config import cfg

from ceilometer_qga.collectors import base
from ceilometer_qga.collectors import checks

SECTOR = 512

#: (meter, stats key, multiplier, unit)
COUNTERS = (
    ('guest.disk.read.bytes', 'read-sectors', SECTOR, 'B'),
    ('guest.disk.write.bytes', 'write-sectors', SECTOR, 'B'),
    ('guest.disk.read.requests', 'read-ios', 1, 'request'),
    ('guest.disk.write.requests', 'write-ios', 1, 'request'),
)


class DiskCollector(base.Collector):
    """Cumulative read/write bytes and requests per guest block device."""

    meters = tuple(base.Meter(meter, base.CUMULATIVE, unit, 'disk')
                   for meter, _key, _mult, unit in COUNTERS)
    command = 'guest-get-diskstats'

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__(conf)
        self._exclude = checks.exclusion(conf, 'disk_exclude')

    def parse(self, reply: Any) -> base.ParseResult:
        """Readings for every device not excluded, up to ``max_items``.

        :raises base.BadReply: the reply is not a list
        """
        result = base.ParseResult()
        disks: list[tuple[str, dict[str, Any]]] = []
        seen: set[str] = set()
        for index, entry in enumerate(checks.entries(reply, self.command)):
            try:
                if not isinstance(entry, dict):
                    raise checks.Nonsense('disk #%d is not an object (%s)'
                                          % (index, checks.show(entry)))
                name = checks.name(entry.get('name'),
                                   'name of disk #%d' % index)
                if checks.is_excluded(self._exclude, name):
                    continue
                if name in seen:
                    raise checks.Nonsense('disk %r is listed twice' % name)
                seen.add(name)
                stats = entry.get('stats')
                if not isinstance(stats, dict):
                    raise checks.Nonsense('disk %r has no stats object (%s)'
                                          % (name, checks.show(stats)))
            except checks.Nonsense as exc:
                result.dropped.append(str(exc))
                continue
            disks.append((name, stats))
        for name, stats in checks.cap(disks, self.conf.qga_polling.max_items,
                                      'disks', result.dropped):
            metadata = {'disk_name': name}
            for meter, key, multiplier, _unit in COUNTERS:
                try:
                    value = checks.count(stats.get(key),
                                         'disk %r %s' % (name, key))
                    value = checks.count(value * multiplier,
                                         'disk %r %s' % (name, meter))
                except checks.Nonsense as exc:
                    result.dropped.append(str(exc))
                    continue
                result.readings.append(
                    base.Reading(meter, value, name, dict(metadata)))
        return result
