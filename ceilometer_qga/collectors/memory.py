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

"""Guest memory from ``/proc/meminfo`` (no native qga command gives it).

qga has no memory-usage command (``guest-get-memory-block-info`` describes
hot-plug blocks, not usage), so this collector declares ``command = None``
and the engine always reads :attr:`MemoryCollector.fallback_file` through
``guest-file-open/read/close`` (when ``[qga_polling] allow_file_reads``).

``available`` is the kernel's ``MemAvailable`` (3.14+), which counts the
reclaimable part of the page cache and slab.  Older kernels lack it; there
the classic approximation ``MemFree + Buffers + Cached`` is used, and the
metadata says so.  ``used = total - available``.
"""

from __future__ import annotations

import re
from typing import Any

from ceilometer_qga.collectors import base
from ceilometer_qga.collectors import checks

TOTAL = 'guest.memory.total'
AVAILABLE = 'guest.memory.available'
USED = 'guest.memory.used'

#: ``Name:   12345 kB``; the unit is what makes a line a memory figure.
_LINE = re.compile(r'^([A-Za-z0-9_()]+):\s+([0-9]{1,20})\s+kB\s*$')


class MemoryCollector(base.Collector):
    """guest.memory.total / .available / .used in MiB."""

    meters = (
        base.Meter(TOTAL, base.GAUGE, 'MiB'),
        base.Meter(AVAILABLE, base.GAUGE, 'MiB'),
        base.Meter(USED, base.GAUGE, 'MiB'),
    )
    command = None
    fallback_file = '/proc/meminfo'
    # Gauges that move from second to second.
    interval = 0

    def parse(self, reply: Any) -> base.ParseResult:
        """There is no native command; the engine never calls this.

        :raises base.BadReply: always
        """
        raise base.BadReply('memory has no native qga command; '
                            'read %s instead' % self.fallback_file)

    def parse_file(self, text: str) -> base.ParseResult:
        """Readings from the text of ``/proc/meminfo``.

        :raises base.BadReply: not text, or no ``Name: N kB`` line at all
        """
        if not isinstance(text, str):
            raise base.BadReply('/proc/meminfo content is not text')
        kib = _kib_values(text)
        if not kib:
            raise base.BadReply('/proc/meminfo has no "Name: N kB" line')
        result = base.ParseResult()
        total = kib.get('MemTotal')
        if total is None:
            result.dropped.append('/proc/meminfo has no MemTotal')
            return result
        try:
            total = checks.number(total, 'MemTotal')
        except checks.Nonsense as exc:
            result.dropped.append(str(exc))
            return result
        result.readings.append(base.Reading(TOTAL, total / 1024.0))

        if 'MemAvailable' in kib:
            available = kib['MemAvailable']
            source = 'MemAvailable'
        elif all(k in kib for k in ('MemFree', 'Buffers', 'Cached')):
            available = kib['MemFree'] + kib['Buffers'] + kib['Cached']
            source = 'MemFree+Buffers+Cached'
        else:
            result.dropped.append('/proc/meminfo has neither MemAvailable '
                                  'nor MemFree, Buffers and Cached')
            return result
        try:
            available = checks.number(available, source)
        except checks.Nonsense as exc:
            result.dropped.append(str(exc))
            return result
        if available > total:
            result.dropped.append('%s %d kB exceeds MemTotal %d kB'
                                  % (source, available, total))
            return result
        metadata = {'available_from': source}
        result.readings.append(
            base.Reading(AVAILABLE, available / 1024.0, None, metadata))
        result.readings.append(
            base.Reading(USED, (total - available) / 1024.0, None,
                         dict(metadata)))
        return result


def _kib_values(text: str) -> dict[str, int]:
    """``{name: kB}`` for every well-formed ``Name: N kB`` line (first wins).

    Lines without the ``kB`` unit (``HugePages_Total: 0``) are counts, not
    sizes, and are left out.
    """
    values: dict[str, int] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match and match.group(1) not in values:
            values[match.group(1)] = int(match.group(2))
    return values
