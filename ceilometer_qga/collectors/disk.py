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

from ceilometer_qga.collectors import device_counters

SECTOR = 512


class DiskCollector(device_counters.DeviceCounterCollector):
    """Cumulative read/write bytes and requests per guest block device."""

    command = 'guest-get-diskstats'
    device = 'disk'
    stats_member = 'stats'
    exclude_option = 'disk_exclude'
    scope = 'disk'
    counters = (
        ('guest.disk.read.bytes', 'read-sectors', SECTOR, 'B'),
        ('guest.disk.write.bytes', 'write-sectors', SECTOR, 'B'),
        ('guest.disk.read.requests', 'read-ios', 1, 'request'),
        ('guest.disk.write.requests', 'write-ios', 1, 'request'),
    )

    def metadata(self, name: str, entry: dict[str, Any]) -> dict[str, Any]:
        """``disk_name``, as Ceilometer's per-disk samples have it."""
        return {'disk_name': name}
