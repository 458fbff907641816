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

libvirt-python is not a requirement of this package: it is imported when
the plugin is built, and its absence is reported against
``[qga_polling] discovery``.
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
from ceilometer_qga import libvirt_xml
from ceilometer_qga.qga import libvirt_connection

LOG = logging.getLogger(__name__)

# virDomainState -> Ceilometer's power state / status (the same tables as
# ceilometer/compute/virt/libvirt/utils.py, which took them from Nova).
# Numbers rather than libvirt constants: this module imports without
# libvirt.
_SHUTOFF = 5
POWER_STATE = {
    0: 'pending',
    1: 'running',
    2: 'running',
    3: 'paused',
    4: 'shutdown',
    5: 'shutdown',
    6: 'crashed',
    7: 'suspended',
}
STATUS = {
    0: 'building',
    1: 'active',
    2: 'active',
    3: 'paused',
    4: 'stopped',
    5: 'stopped',
    6: 'error',
    7: 'suspended',
}


def host_id(project_id: str | None, host: str) -> str:
    """Nova's ``hostId``: sha224(project_id + host), as Ceilometer sets it."""
    return hashlib.sha224(
        ((project_id or '') + host).encode('utf-8')).hexdigest()


class LibvirtDiscovery(base.Discovery):
    """Active Nova domains on ``[libvirt_discovery] uri``.

    The read-only connection is opened on the first :meth:`discover`, and
    opened again when it died (``isAlive`` false, or a call failing with a
    disconnection error; that sweep is then retried once).  Calls are
    serialised by a lock: :meth:`discover` runs in worker threads.
    """

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__(conf)
        self._libvirt = libvirt_connection.import_libvirt(
            '[qga_polling] discovery = libvirt')
        # libvirt prints every error to stderr by default; we get them as
        # exceptions and log them once, so silence the default (as Nova's
        # libvirt driver does).
        self._libvirt.registerErrorHandler(lambda ctx, err: None, None)
        self._uri = conf.libvirt_discovery.uri
        self._host = discovery.host_name(conf)
        self._conn: Any = None
        self._lock = threading.Lock()

    # -- connection ----------------------------------------------------

    def _open_connection(self) -> Any:
        """Open the read-only connection (tests wrap it to inject faults)."""
        return self._libvirt.openReadOnly(self._uri)

    def _connection(self) -> Any:
        if self._conn is not None:
            try:
                alive = self._conn.isAlive()
            except self._libvirt.libvirtError:
                # e.g. "invalid connection pointer" once it was closed
                alive = False
            if alive:
                return self._conn
            LOG.info('libvirt connection to %s is gone; reconnecting',
                     self._uri)
            self._drop_connection()
        try:
            self._conn = self._open_connection()
        except self._libvirt.libvirtError as exc:
            raise discovery.DiscoveryError(
                'cannot open a read-only libvirt connection to %s '
                '([libvirt_discovery] uri): %s' % (self._uri, exc)) from exc
        LOG.debug('libvirt read-only connection to %s opened', self._uri)
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.close()
        except self._libvirt.libvirtError:
            # Already dead; closing is best effort.
            LOG.debug('closing the dead libvirt connection failed',
                      exc_info=True)

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
                if not libvirt_connection.is_disconnect(self._libvirt, exc):
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

    def _discover_once(self) -> list[Guest]:
        conn = self._connection()
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
            if libvirt_connection.is_disconnect(self._libvirt, exc):
                raise
            if exc.get_error_code() == self._libvirt.VIR_ERR_NO_DOMAIN:
                LOG.debug('domain vanished while being inspected: %s', exc)
            else:
                LOG.warning('skipping a domain that cannot be inspected: '
                            '%s', exc)
            return None
        if state == _SHUTOFF:
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
            'status': STATUS.get(state, 'unknown'),
            'state': POWER_STATE.get(state, 'unknown'),
        })
        return Guest(instance_id=instance_id,
                     name=name,
                     display_name=instance.display_name,
                     project_id=instance.project_id,
                     user_id=instance.user_id,
                     channels=libvirt_xml.parse_channels(root),
                     metadata=metadata)
