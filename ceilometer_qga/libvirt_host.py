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

"""libvirt on this host, in one place: the binding, connections, states.

* :func:`import_libvirt`: libvirt-python is optional; whoever needs it says
  which option setting does, so its absence is a clear configuration error.
* :class:`Connection`: a lazily opened connection with the one reconnect
  rule: a connection that is no longer alive, or that was opened before a
  call on it or on one of its siblings failed with :func:`is_disconnect`
  (the daemon went away: every connection of then is stale), is dropped,
  and the next :meth:`Connection.get` opens a new one.  There is no libvirt
  event loop, so no keepalive: a dead daemon is noticed by the next call,
  which fails at once.  Discovery uses one, read-only.
* :class:`ConnectionProvider`: the pool of worker threads every libvirt
  transport of a poller shares, each thread with its own read-write
  :class:`Connection`, siblings under that rule.
* The domain-state tables: virDomainState as words, as Ceilometer's power
  states and statuses, and Nova's ``vm_state`` in the same words.

Bounded, and failing fast
-------------------------
Every libvirt call blocks in C, so none may run on the event loop.  A
libvirt agent call can outlive the caller's deadline: libvirt first syncs
with the agent for up to 5 s whatever timeout is asked for, and waits up to
30 s for the domain's agent job when Nova holds it (quiesce,
set-password).  The asyncio side gives up at its deadline, but the C call
goes on in its thread and cannot be interrupted.  So
:meth:`ConnectionProvider.submit` refuses new work (:class:`PoolExhausted`)
as soon as every thread is taken, instead of queueing it behind hung calls:
the caller reports a timeout and moves on, and a stuck hypervisor costs at
most ``[libvirt_transport] max_threads`` threads.
"""

from __future__ import annotations

from collections.abc import Callable
import concurrent.futures
import errno
import importlib
import threading
from types import ModuleType
from typing import Any
from typing import TypeVar

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

T = TypeVar('T')

#: virDomainState -> word (libvirt's own names), for error details
STATE_WORDS = {
    0: 'nostate',
    1: 'running',
    2: 'blocked',
    3: 'paused',
    4: 'shutdown',
    5: 'shutoff',
    6: 'crashed',
    7: 'pmsuspended',
}
SHUTOFF = 5
# virDomainState -> Ceilometer's power state / status (the same tables as
# ceilometer/compute/virt/libvirt/utils.py, which took them from Nova).
# Numbers rather than libvirt constants: this module imports without
# libvirt.
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
#: Nova's ``vm_state`` (Ceilometer's ``OS-EXT-STS:vm_state``) in the power
#: state words above; others stay unknown
VM_STATE_TO_POWER_STATE = {'active': 'running', 'paused': 'paused',
                           'suspended': 'suspended', 'stopped': 'shutdown',
                           'error': 'crashed'}

TRANSPORT_OPTION = ('[qga_polling] transport = libvirt (or auto, for guests '
                    'without a monitor channel)')


class PoolExhausted(Exception):
    """Every libvirt worker thread is busy; the call was not started."""


class ProviderClosed(RuntimeError):
    """The provider was closed; no further calls are accepted."""


def import_libvirt(needed_by: str = TRANSPORT_OPTION) -> ModuleType:
    """Import libvirt-python, or explain which option needs it.

    Error reporting is silenced once: libvirt prints every error to stderr
    by default, and we get them as exceptions and log them once where
    handled (Nova does the same).

    :param needed_by: the option setting that needs libvirt, for the error
    :raises ValueError: naming ``needed_by``
    """
    try:
        libvirt = importlib.import_module('libvirt')
    except ImportError as exc:
        raise ValueError(
            '%s needs the libvirt Python binding (PyPI libvirt-python, or '
            'the distribution\'s python3-libvirt), which cannot be imported '
            '(%s); install it or choose another setting'
            % (needed_by, exc)) from exc
    libvirt.registerErrorHandler(lambda ctx, err: None, None)
    return libvirt


def is_disconnect(libvirt: ModuleType, exc: BaseException) -> bool:
    """Whether a libvirt error means the connection itself is lost.

    Ceilometer's ``is_disconnection_exception``, plus the errors of a
    connection that was closed under us (``VIR_ERR_INVALID_CONN``) or whose
    socket broke (``EPIPE`` from the RPC layer).
    """
    if not isinstance(exc, libvirt.libvirtError):
        return False
    code, domain = exc.get_error_code(), exc.get_error_domain()
    if code == libvirt.VIR_ERR_INVALID_CONN:
        return True
    if (code in (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_INTERNAL_ERROR)
            and domain in (libvirt.VIR_FROM_REMOTE, libvirt.VIR_FROM_RPC)):
        return True
    return domain == libvirt.VIR_FROM_RPC and code == errno.EPIPE


class _Epoch:
    """Counts the disconnects seen by a family of sibling connections."""

    def __init__(self) -> None:
        self.value = 0


class Connection:
    """One lazily opened libvirt connection, reopened when it died.

    Blocking: use it from worker threads.  Safe to share between threads
    (a ``virConnect`` is).

    :param libvirt: the binding (:func:`import_libvirt`)
    :param uri: the libvirt URI
    :param read_only: ``openReadOnly`` rather than ``open``
    :param opener: opens the connection instead (tests inject faults)
    :param siblings: the epoch of a family of connections to the same
        daemon (:class:`ConnectionProvider`'s threads): a disconnect seen
        by one makes every one opened before it stale
    """

    def __init__(self, libvirt: ModuleType, uri: str, read_only: bool,
                 opener: Callable[[], Any] | None = None,
                 siblings: _Epoch | None = None) -> None:
        self.libvirt = libvirt
        self.uri = uri
        self.read_only = read_only
        self._opener = opener or (
            (lambda: libvirt.openReadOnly(uri)) if read_only
            else (lambda: libvirt.open(uri)))
        self._conn: Any = None
        self._epoch = siblings or _Epoch()
        self._opened_in = -1
        self._lock = threading.Lock()
        self._closed = False

    @property
    def current(self) -> Any:
        """The open connection, or None."""
        return self._conn

    def get(self) -> Any:
        """The open connection; opened first if there is none or it died.

        :raises libvirt.libvirtError: the connection cannot be opened
        :raises ProviderClosed: after :meth:`close` with ``final=True``
        """
        with self._lock:
            if self._closed:
                raise ProviderClosed('libvirt connection provider is closed')
            if self._conn is not None:
                if self._opened_in == self._epoch.value and self._alive():
                    return self._conn
                LOG.info('libvirt connection to %s is gone; reconnecting',
                         self.uri)
                self._drop(self._conn)
            self._conn = self._opener()
            self._opened_in = self._epoch.value
            LOG.debug('libvirt %s connection to %s opened',
                      'read-only' if self.read_only else 'read-write',
                      self.uri)
            return self._conn

    def _alive(self) -> bool:
        try:
            return bool(self._conn.isAlive())
        except self.libvirt.libvirtError:
            # e.g. "invalid connection pointer" once it was closed
            return False

    def owns(self, conn: Any) -> bool:
        """Whether ``conn`` is this one's current connection."""
        return conn is not None and self._conn is conn

    def reset(self, conn: Any, drop: bool = True) -> bool:
        """``conn`` broke: it and its siblings of then are stale.

        :param drop: close it now (the caller's own); else its owner
            drops it on its next :meth:`get`
        :returns: False when ``conn`` was replaced already (a late report)
        """
        with self._lock:
            if conn is None or self._conn is not conn or (
                    self._opened_in != self._epoch.value):
                return False  # another thread already replaced it
            self._epoch.value += 1
            LOG.info('libvirt connection to %s lost; reopening on next use',
                     self.uri)
            if drop:
                self._drop(conn)
            return True

    def close(self, final: bool = False) -> None:
        """Close the connection; with ``final``, refuse to open another."""
        with self._lock:
            self._closed = self._closed or final
            if self._conn is not None:
                self._drop(self._conn)

    def _drop(self, conn: Any) -> None:
        self._conn = None
        try:
            conn.close()
        except self.libvirt.libvirtError:
            # It is broken already; closing is best effort.
            LOG.debug('closing the libvirt connection failed', exc_info=True)


class ConnectionProvider:
    """Worker threads, each with a lazily opened read-write connection.

    A ``virConnect`` is safe to use from several threads at once, but not
    independent: while one thread's ``qemuAgentCommand`` waits on a hung
    agent, calls of other threads on the same connection (``XMLDesc``,
    agent commands to healthy domains) can stall until it returns; calls
    on another connection do not.  One connection per thread keeps a hung
    guest from timing out the others.

    The reconnect rule is :class:`Connection`'s: the threads' connections
    are siblings, so a call that fails because its connection is gone hands
    it back with :meth:`reset`, and the next :meth:`get` of each thread
    opens a new one (each thread closes its own stale one, never one
    another thread may be using).

    :param uri: the libvirt URI: the one the guests were discovered on
        (:attr:`~ceilometer_qga.guest.Guest.libvirt_uri`)
    :param max_threads: ``[libvirt_transport] max_threads``
    """

    def __init__(self, uri: str, max_threads: int) -> None:
        self.libvirt = import_libvirt()
        self.uri = uri
        self.max_threads = max_threads
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.max_threads, thread_name_prefix='qga-libvirt')
        self._conn_lock = threading.Lock()
        #: each thread's :class:`Connection`, all siblings
        self._local = threading.local()
        self._siblings = _Epoch()
        self._connections: list[Connection] = []
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._closed = False

    @property
    def busy(self) -> int:
        """Calls submitted and not finished (running or about to run)."""
        return self._busy

    def _own(self) -> Connection:
        connection = getattr(self._local, 'connection', None)
        if connection is None:
            with self._conn_lock:
                if self._closed:
                    raise ProviderClosed(
                        'libvirt connection provider is closed')
                connection = Connection(self.libvirt, self.uri, False,
                                        siblings=self._siblings)
                self._connections.append(connection)
            self._local.connection = connection
        return connection

    def get(self) -> Any:
        """Return this thread's open connection, opening it first if needed.

        Blocking: call it from a worker thread (inside :meth:`submit`).

        :raises libvirt.libvirtError: the connection cannot be opened
        :raises ProviderClosed: after :meth:`close`
        """
        return self._own().get()

    def reset(self, conn: Any) -> None:
        """``conn`` broke: every connection opened so far is stale.

        Each thread opens a new one on its next :meth:`get`; a report about
        a connection already replaced changes nothing.  Blocking.
        """
        with self._conn_lock:
            owners = [c for c in self._connections if c.owns(conn)]
        mine = getattr(self._local, 'connection', None)
        for owner in owners:
            # Closed now only by the thread that uses it.
            owner.reset(conn, drop=owner is mine)

    def submit(self, fn: Callable[..., T], *args: Any
               ) -> concurrent.futures.Future[T]:
        """Run ``fn(*args)`` in a worker thread.

        :raises PoolExhausted: every thread is busy (hung calls); nothing
            was started
        :raises ProviderClosed: after :meth:`close`
        """
        with self._busy_lock:
            if self._closed:
                raise ProviderClosed('libvirt connection provider is closed')
            if self._busy >= self.max_threads:
                raise PoolExhausted(
                    'all %d libvirt worker threads are busy'
                    % self.max_threads)
            self._busy += 1
        try:
            future = self._executor.submit(fn, *args)
        except BaseException:
            self._release(None)
            raise
        # Runs when the call ends, however late: only then is the thread
        # free again.  A cancel before the start also ends here.
        future.add_done_callback(self._release)
        return future

    def _release(self, _future: Any) -> None:
        with self._busy_lock:
            self._busy -= 1

    def close(self) -> None:
        """Close the connections and stop the pool; idempotent.

        Calls still running in C are not waited for; they end on their own
        libvirt timeouts.
        """
        with self._busy_lock:
            self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._conn_lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close(final=True)
