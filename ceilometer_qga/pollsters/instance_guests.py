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

"""Ceilometer's instances as our guests: identity from Ceilometer, channels from us.

Ceilometer's ``local_instances`` discovery hands the pollsters
``NovaLikeServer`` objects (or novaclient servers): identity and ownership,
but no channels, and it reads libvirt read-only.  The guest-agent channels
and the live power state come from our own discovery plugin (``[qga_polling]
discovery``, by default ``libvirt`` on Ceilometer's libvirt URI, reading the
live domain XML).  An instance our discovery does not list is not running
on this host (shut off, migrated away): it gets no samples, as Ceilometer's
own compute pollsters give none for a shut-off domain.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging

from ceilometer_qga.discovery import base as discovery_base
from ceilometer_qga.guest import Guest
from ceilometer_qga import libvirt_host

LOG = logging.getLogger(__name__)

#: keys of ``Guest.metadata`` and those sample_factory derives from the
#: guest itself; Ceilometer's ``make_sample_from_instance`` fills them
INSTANCE_KEYS = frozenset({'state', 'instance_id', 'name', 'display_name'})


def guest_for(instance: Any, found: Guest) -> Guest:
    """The guest to poll: ``instance``'s identity, ``found``'s channels
    (and the hypervisor they are reached through).

    ``metadata['state']`` (which makes the poller skip a paused domain)
    is the live state our discovery read, else Ceilometer's ``vm_state``
    translated into the same words.
    """
    state = (found.metadata.get('state')
             or libvirt_host.VM_STATE_TO_POWER_STATE.get(
                 getattr(instance, 'OS-EXT-STS:vm_state', None)))
    return Guest(
        instance_id=instance.id,
        name=(getattr(instance, 'OS-EXT-SRV-ATTR:instance_name', None)
              or found.name),
        display_name=getattr(instance, 'name', None),
        project_id=getattr(instance, 'tenant_id', None),
        user_id=getattr(instance, 'user_id', None),
        channels=found.channels,
        libvirt_uri=found.libvirt_uri,
        metadata={'state': state} if state else {})


class InstanceGuests:
    """Ceilometer's instances as guests to poll.

    :meth:`discover` (called from a worker thread: libvirt blocks) asks
    ``channels`` for the guests of this host and keeps the given instances.
    """

    def __init__(self, conf: cfg.ConfigOpts,
                 channels: discovery_base.Discovery) -> None:
        self.conf = conf
        self.channels = channels
        # Active instances our discovery does not list are logged once
        # each: every cycle would repeat the same warning.
        self._reported: set[str] = set()

    def discover(self, instances: Iterable[Any]) -> list[Guest]:
        """Those of ``instances`` (Ceilometer resources) that run here,
        with their channels.
        """
        found = {g.instance_id: g for g in self.channels.discover()}
        guests = []
        for instance in instances:
            guest = found.get(instance.id)
            if guest is not None:
                self._reported.discard(instance.id)
                guests.append(guest_for(instance, guest))
                continue
            active = str(getattr(instance, 'status', '')).lower() == 'active'
            if active and instance.id not in self._reported:
                self._reported.add(instance.id)
                LOG.warning('Instance %s is active for Ceilometer but the '
                            '%r discovery ([qga_polling] discovery) does not '
                            'list it on this host; no guest-agent samples '
                            'for it', instance.id,
                            self.conf.qga_polling.discovery)
            else:
                LOG.debug('Instance %s is not running here; skipped',
                          instance.id)
        return guests

    def close(self) -> None:
        """Release our discovery's connections."""
        self.channels.close()
