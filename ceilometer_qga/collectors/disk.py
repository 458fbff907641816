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

"""Guest block-device I/O counters, from ``guest-get-diskstats`` or /proc.

The agent (qemu-ga 7.1+, Linux guests) returns ``/proc/diskstats`` as a
list of ``{name, major, minor, stats{read-ios, read-sectors, write-ios,
write-sectors, ...}}``.  Sectors are the kernel's fixed 512-byte units
whatever the device's real sector size, so bytes = sectors * 512.

Older agents (5.2 and the rest before 7.1) lack the command; then the
engine reads ``/proc/diskstats`` itself, as qemu-ga does
(``guest_get_diskstats`` in ``qga/commands-linux.c``): per line ``major
minor name`` and the counters, of which reads completed,
sectors read, writes completed and sectors written are the 1st, 3rd, 5th
and 7th.  Kernels before 2.6.25 wrote only four counters for partitions
(reads, sectors read, writes, sectors written), which qemu-ga reads too.

Devices whose name matches ``[disk_collector] exclude`` (by default loop,
ram, zram, floppy and CD-ROM devices) are left out before the
``max_items`` cap is applied.
"""

from __future__ import annotations

from typing import Any

from ceilometer_qga.collectors import base
from ceilometer_qga.collectors import device_counters

SECTOR = 512
#: position of each counter after ``major minor name`` in /proc/diskstats
_DISKSTATS = (('read-ios', 0), ('read-sectors', 2), ('write-ios', 4),
              ('write-sectors', 6))
#: the same in the four-counter partition lines of kernels before 2.6.25
_DISKSTATS_OLD = (('read-ios', 0), ('read-sectors', 1), ('write-ios', 2),
                  ('write-sectors', 3))


class DiskCollector(device_counters.DeviceCounterCollector):
    """Cumulative read/write bytes and requests per guest block device."""

    command = 'guest-get-diskstats'
    fallback_file = '/proc/diskstats'
    # Counters: a rate needs a reading in every sweep.
    interval = 0
    device = 'disk'
    stats_member = 'stats'
    CONFIG_OPTS = [device_counters.exclude_opt(
        r'^(loop|ram|zram|fd|sr)\d*$', 'disk_exclude', 'block devices')]
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

    def parse_file(self, text: str) -> base.ParseResult:
        """Readings from the text of ``/proc/diskstats``.

        :raises base.BadReply: not text
        """
        if not isinstance(text, str):
            raise base.BadReply('%s content is not text' % self.fallback_file)
        entries = []
        for line in text.splitlines():
            if len(line.split()) == 7:
                entries += device_counters.proc_table(
                    line, self.fallback_file, _DISKSTATS_OLD, 4, 'stats',
                    name_column=2)
            else:
                entries += device_counters.proc_table(
                    line, self.fallback_file, _DISKSTATS, 7, 'stats',
                    name_column=2)
        return self.parse_entries(entries)
