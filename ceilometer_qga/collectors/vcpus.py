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

"""Online virtual CPUs, from ``guest-get-vcpus``.

The agent lists every logical CPU the guest knows, ``{logical-id, online,
can-offline}``.  ``guest.vcpus.online`` counts those with ``online: true``;
compared with the flavor's vcpus it shows CPUs the guest has switched off.
If any entry is malformed no reading is made, rather than a wrong count.
"""

from __future__ import annotations

from typing import Any

from ceilometer_qga.collectors import base
from ceilometer_qga.collectors import checks

ONLINE = 'guest.vcpus.online'


class VcpusCollector(base.Collector):
    """guest.vcpus.online: number of online guest CPUs."""

    meters = (base.Meter(ONLINE, base.GAUGE, 'vcpu'),)
    command = 'guest-get-vcpus'
    # vCPU hotplug and offlining are rare operator actions.
    interval = 300

    def parse(self, reply: Any) -> base.ParseResult:
        """One reading; the metadata says how many CPUs were listed.

        :raises base.BadReply: the reply is not a list
        """
        result = base.ParseResult()
        cpus = checks.entries(reply, self.command)
        online = 0
        seen: set[int] = set()
        try:
            if not cpus:
                raise checks.Nonsense('guest-get-vcpus listed no CPU')
            for index, entry in enumerate(cpus):
                if not isinstance(entry, dict):
                    raise checks.Nonsense('vcpu #%d is not an object (%s)'
                                          % (index, checks.show(entry)))
                logical_id = entry.get('logical-id')
                if (isinstance(logical_id, bool)
                        or not isinstance(logical_id, int)
                        or logical_id < 0):
                    raise checks.Nonsense('vcpu #%d has no valid logical-id '
                                          '(%s)'
                                          % (index, checks.show(logical_id)))
                if logical_id in seen:
                    raise checks.Nonsense('vcpu %d is listed twice'
                                          % logical_id)
                seen.add(logical_id)
                state = entry.get('online')
                if not isinstance(state, bool):
                    raise checks.Nonsense('vcpu %d online is not a boolean '
                                          '(%s)'
                                          % (logical_id, checks.show(state)))
                online += state
        except checks.Nonsense as exc:
            result.dropped.append('%s; no online count reported' % exc)
            return result
        result.readings.append(
            base.Reading(ONLINE, online, None, {'vcpus_listed': len(cpus)}))
        return result
