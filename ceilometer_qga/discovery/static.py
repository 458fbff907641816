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

"""Static discovery: the guests listed in ``[static_discovery] guests``.

For hosts without libvirt, demos and tests.  Each item is
``INSTANCE_UUID=SOCKET_PATH``: the socket of a guest agent the poller owns
(the dedicated monitor channel, or a stand-in ``qemu-ga -m unix-listen``).
The list is checked once, when the plugin is built, so a bad item stops the
service at start with a message naming the option and the item.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from typing import Any
import uuid

from oslo_config import cfg
from oslo_log import log as logging

from ceilometer_qga import discovery
from ceilometer_qga.discovery import base
from ceilometer_qga.guest import Channel
from ceilometer_qga.guest import Guest

LOG = logging.getLogger(__name__)

#: this plugin's group (``<name>_discovery``, see ceilometer_qga.plugins)
GROUP = 'static_discovery'
OPTION = '[%s] guests' % GROUP

OPTS = [
    cfg.ListOpt('guests',
                default=[],
                help='Guests to poll with the static discovery, as '
                     'INSTANCE_UUID=SOCKET_PATH items.'),
    # Without Nova's metadata, what the samples of the static guests say
    # about owner and flavor comes from here.  Ceilometer's Gnocchi
    # publisher writes each sample's project_id over the resource's, and
    # Gnocchi's instance type requires a flavor.
    cfg.StrOpt('project_id',
               help='Project (tenant) id that the samples of every static '
                    'guest carry. Ceilometer\'s Gnocchi publisher sets it on '
                    'the resources: unset, the samples carry no project and '
                    'Gnocchi\'s resources get none (admin-only), even where '
                    'Nova had set one.'),
    cfg.StrOpt('user_id',
               help='User id that the samples of every static guest carry '
                    '(the user of the resources they create).'),
    cfg.StrOpt('flavor_id',
               default='unknown',
               help='Flavor id in the metadata of every static guest\'s '
                    'samples: Gnocchi\'s instance resource type requires '
                    'one, and rejects the instance-level samples of a new '
                    'instance without it.'),
    cfg.StrOpt('flavor_name',
               default='unknown',
               help='Flavor name (Ceilometer\'s instance_type) in the '
                    'metadata of every static guest\'s samples; required '
                    'by Gnocchi\'s instance resource type too.'),
]

# sun_path is 108 bytes on Linux, one of them the terminating NUL.
_MAX_SOCKET_PATH = 107


def parse_item(item: str) -> tuple[str, str]:
    """Split and check one ``INSTANCE_UUID=SOCKET_PATH`` item.

    Returns the canonical (lower-case, hyphenated) uuid and the path.

    :raises ValueError: the item is malformed; the message names the
        option and the item.
    """
    def bad(why: str) -> ValueError:
        return ValueError('%s: item %r: %s' % (OPTION, item, why))

    instance_id, sep, path = item.strip().partition('=')
    if not sep:
        raise bad('expected INSTANCE_UUID=SOCKET_PATH')
    try:
        instance_id = str(uuid.UUID(instance_id.strip()))
    except ValueError:
        raise bad('%r is not a uuid' % instance_id.strip()) from None
    path = path.strip()
    if not path:
        raise bad('the socket path is empty')
    if '\0' in path:
        raise bad('the socket path contains a NUL byte')
    if not os.path.isabs(path):
        raise bad('the socket path must be absolute')
    if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
        raise bad('the socket path is longer than %d bytes, the limit of '
                  'unix sockets' % _MAX_SOCKET_PATH)
    return instance_id, path


def parse_guests(items: list[str]) -> list[tuple[str, str]]:
    """Check the whole list: every item, and no uuid or socket twice.

    :raises ValueError: naming the option and the offending item.
    """
    pairs = []
    seen_ids: dict[str, str] = {}
    seen_paths: dict[str, str] = {}
    for item in items:
        instance_id, path = parse_item(item)
        if instance_id in seen_ids:
            raise ValueError('%s: item %r: instance %s is already listed '
                             'as %r' % (OPTION, item, instance_id,
                                        seen_ids[instance_id]))
        if path in seen_paths:
            raise ValueError('%s: item %r: socket %s is already listed '
                             'as %r' % (OPTION, item, path,
                                        seen_paths[path]))
        seen_ids[instance_id] = item
        seen_paths[path] = item
        pairs.append((instance_id, path))
    return pairs


class StaticDiscovery(base.Discovery):
    """The guests of ``[static_discovery] guests``, every sweep the same.

    Each guest has one channel: the dedicated monitor channel
    (``[qga_polling] monitor_channel_name``) at the listed socket, state
    unknown.  There is no Nova here, so the guest's name (and the display
    name in its samples' metadata) is its uuid, and its owner and flavor
    are the ones configured in ``[static_discovery]`` (``project_id``,
    ``user_id``, ``flavor_id``, ``flavor_name``): with them, the instance
    resource Gnocchi needs is complete from the samples alone.  ``metadata['state']`` is left out:
    the power state is unknown, the poller just tries.
    """

    CONFIG_OPTS = OPTS

    def __init__(self, conf: cfg.ConfigOpts, opts: Any) -> None:
        super().__init__(conf, opts)
        pairs = parse_guests(opts.guests)
        host = discovery.host_name(conf)
        channel_name = conf.qga_polling.monitor_channel_name
        if pairs and not opts.project_id and any(
                url.startswith('notifier:') for url in conf.qga_polling.publishers):
            LOG.warning('[static_discovery] project_id is not set: the samples of '
                        'the %d static guests carry no project, and '
                        'Ceilometer\'s Gnocchi publisher sets the project of '
                        'their resources to none (also where Nova set one)',
                        len(pairs))
        flavor = {'id': opts.flavor_id, 'name': opts.flavor_name}
        self._guests = tuple(
            Guest(instance_id=instance_id,
                  name=instance_id,
                  project_id=opts.project_id or None,
                  user_id=opts.user_id or None,
                  channels=(Channel(target_name=channel_name, path=path),),
                  # Without a Nova project there is no hostId to hash, so
                  # both keys carry the host name.  The display name (the
                  # uuid: no user chose one) and the flavor keys are there
                  # for Gnocchi's instance type, under the names of
                  # Ceilometer's instance metadata (which
                  # gnocchi_resources.yaml maps); the guest itself has no
                  # display name, so that qga-probe does not show the uuid
                  # thrice.
                  metadata={'instance_id': instance_id,
                            'name': instance_id,
                            'display_name': instance_id,
                            'host': host,
                            'instance_host': host,
                            'flavor': flavor,
                            'instance_type': opts.flavor_name})
            for instance_id, path in pairs)

    def discover(self) -> list[Guest]:
        """Return the configured guests (fresh list, fresh metadata)."""
        # Fresh metadata dicts, so that no caller's edit outlives a sweep.
        return [dataclasses.replace(g, metadata=copy.deepcopy(g.metadata))
                for g in self._guests]
