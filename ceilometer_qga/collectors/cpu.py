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

"""Guest CPU time, from ``guest-get-cpustats`` or ``/proc/stat``.

``guest.cpu.time`` is the busy time of all guest CPUs together, in
nanoseconds, like Ceilometer's ``cpu`` meter is for the host's view:
user + nice + system + irq + softirq + steal.  ``idle`` and ``iowait`` are
not busy time.  ``guest`` and ``guest_nice`` are already counted inside
``user`` and ``nice`` by the kernel, so adding them would count twice.

Units differ between the two sources:

* ``guest-get-cpustats`` (qemu-ga 7.1+, Linux guests) reads ``/proc/stat``
  and converts each field with ``ticks * 1000 / sysconf(_SC_CLK_TCK)``
  (qemu ``qga/commands-linux.c``): **milliseconds**.  Measured with
  qemu-ga 7.2 on the project machine: cpu0 user 29440 against 2945 ticks in
  ``/proc/stat`` read right after.
* ``/proc/stat`` counts USER_HZ ticks.  The host cannot ask the guest for
  its ``_SC_CLK_TCK``; USER_HZ is 100 on every Linux architecture a cloud
  runs (x86, arm64, ppc64le, s390x), and that is what is assumed here.

Only the per-CPU ``cpuN`` lines are summed, as the agent does; their sum is
the aggregate ``cpu`` line.  A CPU that goes offline disappears from both
sources, so the cumulative total can then go down (Ceilometer treats that
as a counter reset).  If any CPU's figures are unusable, no reading is made:
a sum over some of the CPUs would look like a reset too.
"""

from __future__ import annotations

from typing import Any

from ceilometer_qga.collectors import base
from ceilometer_qga.collectors import checks

TIME = 'guest.cpu.time'

#: Busy-time fields, in the names of guest-get-cpustats.
BUSY = ('user', 'nice', 'system', 'irq', 'softirq', 'steal')
#: Always present in a cpustats entry; the others depend on the kernel.
REQUIRED = ('user', 'nice', 'system')
#: Position of each BUSY field among the numbers of a /proc/stat cpuN line
#: (user nice system idle iowait irq softirq steal guest guest_nice).
_STAT_FIELDS = {'user': 0, 'nice': 1, 'system': 2, 'irq': 5,
                'softirq': 6, 'steal': 7}

NS_PER_MS = 1000 * 1000
USER_HZ = 100
NS_PER_TICK = 1000 * 1000 * 1000 // USER_HZ


class CpuCollector(base.Collector):
    """guest.cpu.time: cumulative non-idle CPU time of the guest, in ns."""

    meters = (base.Meter(TIME, base.CUMULATIVE, 'ns'),)
    command = 'guest-get-cpustats'
    fallback_file = '/proc/stat'
    # A counter: a rate needs a reading in every sweep.
    interval = 0

    def parse(self, reply: Any) -> base.ParseResult:
        """One reading from the per-CPU millisecond figures.

        :raises base.BadReply: the reply is not a list
        """
        result = base.ParseResult()
        cpus = checks.entries(reply, self.command)
        total_ms = 0
        seen = set()
        try:
            if not cpus:
                raise checks.Nonsense('guest-get-cpustats listed no CPU')
            for index, entry in enumerate(cpus):
                cpu = _cpu_number(index, entry)
                if cpu in seen:
                    raise checks.Nonsense('CPU %d is listed twice' % cpu)
                seen.add(cpu)
                for field in BUSY:
                    value = entry.get(field)
                    if value is None and field not in REQUIRED:
                        # Older kernels lack the field: it adds nothing.
                        continue
                    total_ms += checks.count(value,
                                             'CPU %d %s' % (cpu, field))
            volume = checks.number(total_ms * NS_PER_MS, 'guest.cpu.time')
        except checks.Nonsense as exc:
            result.dropped.append('%s; no CPU time reported' % exc)
            return result
        result.readings.append(
            base.Reading(TIME, volume, None, {'cpu_number': len(seen)}))
        return result

    def parse_file(self, text: str) -> base.ParseResult:
        """One reading from the ``cpuN`` lines of ``/proc/stat``.

        :raises base.BadReply: not text, or no ``cpuN`` line
        """
        if not isinstance(text, str):
            raise base.BadReply('/proc/stat content is not text')
        lines = [line.split() for line in text.splitlines()]
        lines = [f for f in lines if f and f[0].startswith('cpu')
                 and f[0] != 'cpu']
        if not lines:
            raise base.BadReply('/proc/stat has no cpuN line')
        result = base.ParseResult()
        total_ticks = 0
        seen = set()
        try:
            for fields in lines:
                label = fields[0]
                if not (label[3:].isascii() and label[3:].isdigit()):
                    raise checks.Nonsense('/proc/stat line %s is not a CPU'
                                          % checks.show(label))
                if label in seen:
                    raise checks.Nonsense('/proc/stat lists %s twice' % label)
                seen.add(label)
                values = fields[1:]
                if len(values) < 4:
                    raise checks.Nonsense('/proc/stat %s has %d fields, '
                                          'expected at least 4'
                                          % (label, len(values)))
                for field, position in _STAT_FIELDS.items():
                    if position < len(values):
                        total_ticks += _ticks(values[position], label, field)
            volume = checks.number(total_ticks * NS_PER_TICK,
                                   'guest.cpu.time')
        except checks.Nonsense as exc:
            result.dropped.append('%s; no CPU time reported' % exc)
            return result
        result.readings.append(
            base.Reading(TIME, volume, None, {'cpu_number': len(seen)}))
        return result


def _cpu_number(index: int, entry: Any) -> int:
    """The ``cpu`` index of a linux cpustats entry.

    :raises checks.Nonsense: not a linux entry, or no usable index
    """
    if not isinstance(entry, dict):
        raise checks.Nonsense('cpustats entry #%d is not an object (%s)'
                              % (index, checks.show(entry)))
    if entry.get('type') != 'linux':
        raise checks.Nonsense('cpustats entry #%d has type %s, not linux'
                              % (index, checks.show(entry.get('type'))))
    cpu = entry.get('cpu')
    if isinstance(cpu, bool) or not isinstance(cpu, int) or cpu < 0:
        raise checks.Nonsense('cpustats entry #%d has no valid cpu number '
                              '(%s)' % (index, checks.show(cpu)))
    return cpu


def _ticks(word: str, label: str, field: str) -> int:
    """One /proc/stat figure as an int (decimal digits only)."""
    if not (word.isascii() and word.isdigit()) or len(word) > 20:
        raise checks.Nonsense('/proc/stat %s %s is not a count (%s)'
                              % (label, field, checks.show(word)))
    return int(word)
