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

"""Guest load averages, from ``guest-get-load`` or ``/proc/loadavg``.

``guest-get-load`` (qemu-ga 10.0+; ``getloadavg()`` on POSIX, an emulation
over PDH counters on Windows) returns ``{load1m, load5m, load15m}``.  Older
Linux agents have no such command; ``/proc/loadavg`` then gives the same
three figures as its first three fields.
"""

from __future__ import annotations

import re
from typing import Any

from ceilometer_qga.collectors import base
from ceilometer_qga.collectors import checks

#: meter name for each native key, in /proc/loadavg order
LOADS = (
    ('load1m', 'guest.load.1'),
    ('load5m', 'guest.load.5'),
    ('load15m', 'guest.load.15'),
)

#: a plain decimal: Python's float() would also take "nan", "inf", "1e999"
#: and "1_0", none of which the kernel ever writes
_DECIMAL = re.compile(r'^[0-9]{1,20}(\.[0-9]{1,20})?$')


class LoadCollector(base.Collector):
    """guest.load.1 / .5 / .15 (gauge, process)."""

    meters = tuple(base.Meter(meter, base.GAUGE, 'process')
                   for _key, meter in LOADS)
    command = 'guest-get-load'
    fallback_file = '/proc/loadavg'
    # Gauges that move from second to second.
    interval = 0

    def parse(self, reply: Any) -> base.ParseResult:
        """Readings from the ``{load1m, load5m, load15m}`` object.

        :raises base.BadReply: the reply is not an object
        """
        if not isinstance(reply, dict):
            raise base.BadReply('guest-get-load: expected an object, got %s'
                                % type(reply).__name__)
        result = base.ParseResult()
        for key, meter in LOADS:
            try:
                value = checks.number(reply.get(key), key)
            except checks.Nonsense as exc:
                result.dropped.append(str(exc))
                continue
            result.readings.append(base.Reading(meter, value))
        return result

    def parse_file(self, text: str) -> base.ParseResult:
        """Readings from the first three fields of ``/proc/loadavg``.

        :raises base.BadReply: not text, or fewer than three fields
        """
        if not isinstance(text, str):
            raise base.BadReply('/proc/loadavg content is not text')
        fields = text.split(None, 3)
        if len(fields) < 3:
            raise base.BadReply('/proc/loadavg has %d fields, expected at '
                                'least 3' % len(fields))
        result = base.ParseResult()
        for word, (key, meter) in zip(fields, LOADS):
            if not _DECIMAL.match(word):
                result.dropped.append('/proc/loadavg %s is not a load (%s)'
                                      % (key, checks.show(word)))
                continue
            try:
                value = checks.number(float(word), '/proc/loadavg %s' % key)
            except checks.Nonsense as exc:
                result.dropped.append(str(exc))
                continue
            result.readings.append(base.Reading(meter, value))
        return result
