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

"""libvirt discovery: the active Nova domains of the local hypervisor.

Works like Ceilometer's ``libvirt_metadata`` instance discovery
(``ceilometer/compute/discovery.py``): a read-only connection, one pass over
the domains, identity and ownership from Nova's ``<nova:instance>``
metadata, and domains without it (not Nova's) skipped.  It differs in three
ways:

* only active domains are listed (running, paused, suspended...); shut-off
  ones have no agent to ask.  Each guest's ``metadata['state']`` is
  Ceilometer's power state (``running``, ``paused``...), so the poller can
  report a paused guest as down without contacting it;
* everything is read from the *live* XML (one ``XMLDesc`` per domain): the
  Nova metadata and the virtio channels, whose socket path libvirt may
  have chosen itself and whose ``state='connected'`` says whether the
  guest opened its end;
* the flavor id comes only from the metadata (Nova writes it since 2025.2),
  else the flavor name; there is no Nova API lookup.

The connection, its reconnect rule and the state tables are
:mod:`ceilometer_qga.libvirt_host`'s.  libvirt-python is imported when the
plugin is built, and its absence is reported against ``[qga_polling]
discovery``.

Each guest carries the URI in :attr:`~ceilometer_qga.guest.Guest.libvirt_uri`:
the libvirt transport asks the agent through the hypervisor that listed the
domain, so ``[libvirt_discovery] uri`` is the one place the hypervisor is
named.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging

from ceilometer_qga import discovery
from ceilometer_qga.discovery import base
from ceilometer_qga.discovery import nova_metadata
from ceilometer_qga.guest import Guest
from ceilometer_qga import libvirt_host
from ceilometer_qga import libvirt_xml

LOG = logging.getLogger(__name__)

#: this plugin's group (``<name>_discovery``, see ceilometer_qga.plugins)
GROUP = 'libvirt_discovery'

OPTS = [
    cfg.StrOpt('uri',
               default='qemu:///system',
               help='libvirt connection URI of the hypervisor whose domains '
                    'are polled. The guest agents are reached through the '
                    'same URI (with [qga_polling] transport = libvirt or '
                    'auto), which needs a read-write connection.'),
]


def host_id(project_id: str | None, host: str) -> str:
    """Nova's ``hostId``: sha224(project_id + host), as Ceilometer sets it."""
    return hashlib.sha224(
        ((project_id or '') + host).encode('utf-8')).hexdigest()


class LibvirtDiscovery(base.Discovery):
    """Active Nova domains on ``[libvirt_discovery] uri``, with that URI.

    The read-only connection is opened on the first :meth:`discover`, and
    opened again when it died (``isAlive`` false, or a call failing with a
    disconnection error; that sweep is then retried once).  Calls are
    serialised by a lock: :meth:`discover` runs in worker threads.
    """

    CONFIG_OPTS = OPTS

    def __init__(self, conf: cfg.ConfigOpts, opts: Any) -> None:
        super().__init__(conf, opts)
        self._libvirt = libvirt_host.import_libvirt(
            '[qga_polling] discovery = libvirt')
        self._uri = opts.uri
        self._host = discovery.host_name(conf)
        self._connection = libvirt_host.Connection(
            self._libvirt, self._uri, read_only=True,
            opener=self._open_connection)
        self._lock = threading.Lock()

    # -- connection ----------------------------------------------------

    @classmethod
    def libvirt_uri(cls, opts: Any) -> str | None:
        """``[libvirt_discovery] uri``."""
        return opts.uri

    def _open_connection(self) -> Any:
        """Open the read-only connection (tests wrap it to inject faults)."""
        return self._libvirt.openReadOnly(self._uri)

    def _connect(self) -> Any:
        try:
            return self._connection.get()
        except self._libvirt.libvirtError as exc:
            raise discovery.DiscoveryError(
                'cannot open a read-only libvirt connection to %s '
                '([libvirt_discovery] uri): %s' % (self._uri, exc)) from exc

    def _drop_connection(self) -> None:
        self._connection.close()

    def close(self) -> None:
        """Close the libvirt connection (reopened by the next discover)."""
        with self._lock:
            self._drop_connection()

    # -- discovery -----------------------------------------------------

    def discover(self) -> list[Guest]:
        """Return the active Nova domains as guests.

        :raises ceilometer_qga.discovery.DiscoveryError: libvirt cannot be
            reached, or the domains cannot be listed, even after one
            reconnect.
        """
        with self._lock:
            try:
                return self._discover_once()
            except self._libvirt.libvirtError as exc:
                if not libvirt_host.is_disconnect(self._libvirt, exc):
                    raise discovery.DiscoveryError(
                        'cannot list the domains of %s: %s'
                        % (self._uri, exc)) from exc
                LOG.warning('libvirt connection to %s lost (%s); '
                            'reconnecting once', self._uri, exc)
                self._drop_connection()
            try:
                return self._discover_once()
            except self._libvirt.libvirtError as exc:
                self._drop_connection()
                raise discovery.DiscoveryError(
                    'cannot list the domains of %s after reconnecting: %s'
                    % (self._uri, exc)) from exc

    def discover_one(self, instance_id: str) -> Guest | None:
        """One domain, looked up by UUID (what a libvirt event names).

        Same connection, reconnect rule and inspection as :meth:`discover`.
        """
        with self._lock:
            for attempt in (1, 2):
                try:
                    conn = self._connect()
                    return self._inspect(conn.lookupByUUIDString(instance_id))
                except self._libvirt.libvirtError as exc:
                    if exc.get_error_code() == self._libvirt.VIR_ERR_NO_DOMAIN:
                        return None
                    lost = libvirt_host.is_disconnect(self._libvirt, exc)
                    if lost:
                        self._drop_connection()
                    if attempt == 2 or not lost:
                        raise discovery.DiscoveryError(
                            'cannot inspect domain %s of %s: %s'
                            % (instance_id, self._uri, exc)) from exc
                    LOG.warning('libvirt connection to %s lost (%s); '
                                'reconnecting once', self._uri, exc)
        return None  # not reached: the second attempt returns or raises

    def _discover_once(self) -> list[Guest]:
        conn = self._connect()
        domains = conn.listAllDomains(
            self._libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
        guests = []
        for dom in domains:
            guest = self._inspect(dom)
            if guest is not None:
                guests.append(guest)
        return guests

    def _inspect(self, dom: Any) -> Guest | None:
        """Build the guest of one domain; None to skip it.

        Disconnection errors propagate (the caller reconnects); any other
        error concerns this domain only and skips it.
        """
        try:
            instance_id = dom.UUIDString()
            name = dom.name()
            xml = dom.XMLDesc(0)
            # After the XML: a domain stopped in between still has an
            # (inactive) XML, but now reports shut-off.
            state = dom.state()[0]
        except self._libvirt.libvirtError as exc:
            if libvirt_host.is_disconnect(self._libvirt, exc):
                raise
            if exc.get_error_code() == self._libvirt.VIR_ERR_NO_DOMAIN:
                LOG.debug('domain vanished while being inspected: %s', exc)
            else:
                LOG.warning('skipping a domain that cannot be inspected: '
                            '%s', exc)
            return None
        if state == libvirt_host.SHUTOFF:
            LOG.debug('domain %s (%s) stopped while being inspected',
                      name, instance_id)
            return None

        root = libvirt_xml.parse_xml(xml)
        if root is None:
            LOG.warning('domain %s (%s): libvirt returned XML that does not '
                        'parse; skipped', name, instance_id)
            return None
        instance = nova_metadata.domain_instance(root)
        if instance is None:
            LOG.debug('domain %s (%s) has no Nova metadata; skipped',
                      name, instance_id)
            return None

        metadata = dict(instance.metadata)
        metadata.update({
            'name': name,
            'instance_id': instance_id,
            'host': host_id(instance.project_id, self._host),
            'instance_host': self._host,
            'status': libvirt_host.STATUS.get(state, 'unknown'),
            'state': libvirt_host.POWER_STATE.get(state, 'unknown'),
        })
        return Guest(instance_id=instance_id,
                     name=name,
                     display_name=instance.display_name,
                     project_id=instance.project_id,
                     user_id=instance.user_id,
                     channels=libvirt_xml.parse_channels(root),
                     libvirt_uri=self._uri,
                     metadata=metadata)
