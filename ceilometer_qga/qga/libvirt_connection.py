"""Read-write libvirt connections, and the threads that use them.

Every libvirt call blocks in C, so none may run on the event loop.  All the
libvirt transports of a poller share one :class:`ConnectionProvider`: one
pool of ``[libvirt_discovery] max_threads`` worker threads, each with its
own connection to ``[libvirt_discovery] uri``.  A ``virConnect`` is safe
to use from several threads at once, but not independent: measured with
libvirt 9.0 (tests/e2e/test_probe_vm.py), while one thread's
``qemuAgentCommand`` waited on a hung agent, calls of other threads on the
same connection (``XMLDesc``, agent commands to healthy domains) stalled
until it returned in about half the tries, and never on another connection.
One connection per thread keeps a hung guest from timing out the others.

Bounded, and failing fast
-------------------------
A libvirt agent call can outlive the caller's deadline: libvirt first syncs
with the agent for up to 5 s whatever timeout is asked for, and waits up to
30 s for the domain's agent job when Nova holds it (quiesce,
set-password).  The asyncio side gives up at its deadline, but the C call
goes on in its thread and cannot be interrupted.  So :meth:`submit` refuses
new work (:class:`PoolExhausted`) as soon as every thread is taken, instead
of queueing it behind hung calls: the caller reports a timeout and moves on,
and a stuck hypervisor costs at most ``max_threads`` threads.

Reconnecting
------------
A thread's connection is opened lazily on its first use.  A call that
fails because the connection itself is gone (:func:`is_disconnect`) hands
it back with :meth:`reset`: the daemon went away, so every connection
opened before is stale, and the next :meth:`get` of each thread opens a new
one (each thread closes its own stale one, never one another thread may be
using).
There is no libvirt event loop, so no keepalive: a dead daemon is noticed
by the next call, which fails at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import concurrent.futures
import errno
import importlib
import threading
from types import ModuleType
from typing import Any
from typing import TypeVar

from oslo_config import cfg
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

T = TypeVar('T')


class PoolExhausted(Exception):
    """Every libvirt worker thread is busy; the call was not started."""


class ProviderClosed(RuntimeError):
    """The provider was closed; no further calls are accepted."""


TRANSPORT_OPTION = ('[qga_polling] transport = libvirt (or auto, for guests '
                    'without a monitor channel)')


def import_libvirt(needed_by: str = TRANSPORT_OPTION) -> ModuleType:
    """Import libvirt-python, or explain which option needs it.

    :param needed_by: the option setting that needs libvirt, for the error
    :raises ValueError: naming ``needed_by``
    """
    try:
        return importlib.import_module('libvirt')
    except ImportError as exc:
        raise ValueError(
            '%s needs the libvirt Python binding (PyPI libvirt-python, or '
            'the distribution\'s python3-libvirt), which cannot be imported '
            '(%s); install it or choose another setting'
            % (needed_by, exc)) from exc


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


class ConnectionProvider:
    """Worker threads, each with a lazily opened read-write connection.

    :param conf: the poller's configuration (``[libvirt_discovery] uri``
        and ``max_threads``)
    :param uri: overrides ``[libvirt_discovery] uri``
    :param max_threads: overrides ``[libvirt_discovery] max_threads``
    """

    def __init__(self, conf: cfg.ConfigOpts, uri: str | None = None,
                 max_threads: int | None = None) -> None:
        self.libvirt = import_libvirt()
        # libvirt prints every error to stderr by default; we get them as
        # exceptions and log them once where handled (Nova does the same).
        self.libvirt.registerErrorHandler(lambda ctx, err: None, None)
        self.uri = uri or conf.libvirt_discovery.uri
        self.max_threads = max_threads or conf.libvirt_discovery.max_threads
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.max_threads, thread_name_prefix='qga-libvirt')
        self._conn_lock = threading.Lock()
        #: (generation, connection) of each worker thread
        self._local = threading.local()
        #: connections opened in the current generation
        self._conns: set[Any] = set()
        self._generation = 0
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._closed = False

    @property
    def busy(self) -> int:
        """Calls submitted and not finished (running or about to run)."""
        return self._busy

    def get(self) -> Any:
        """Return this thread's open connection, opening it first if needed.

        Blocking: call it from a worker thread (inside :meth:`submit`).

        :raises libvirt.libvirtError: the connection cannot be opened
        :raises ProviderClosed: after :meth:`close`
        """
        with self._conn_lock:
            if self._closed:
                raise ProviderClosed('libvirt connection provider is closed')
            generation, conn = getattr(self._local, 'conn', (None, None))
            if conn is not None and generation == self._generation:
                return conn
            if conn is not None:
                self._close_quietly(conn)  # stale, and this thread's own
            self._local.conn = (None, None)
            conn = self.libvirt.open(self.uri)
            self._conns.add(conn)
            self._local.conn = (self._generation, conn)
            LOG.debug('libvirt read-write connection to %s opened',
                      self.uri)
            return conn

    def reset(self, conn: Any) -> None:
        """``conn`` broke: every connection opened so far is stale.

        Each thread opens a new one on its next :meth:`get`; a report about
        a connection already replaced changes nothing.  Blocking.
        """
        with self._conn_lock:
            if conn is None or conn not in self._conns:
                return  # another thread already reported this generation
            self._conns = set()
            self._generation += 1
            if getattr(self._local, 'conn', (None, None))[1] is conn:
                self._local.conn = (None, None)
            else:
                conn = None  # another thread's: it closes it itself
        LOG.info('libvirt connection to %s lost; reopening on next use',
                 self.uri)
        if conn is not None:
            self._close_quietly(conn)

    def _close_quietly(self, conn: Any) -> None:
        try:
            conn.close()
        except self.libvirt.libvirtError:
            # It is broken already; closing is best effort.
            LOG.debug('closing a libvirt connection failed', exc_info=True)

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

    async def call(self, fn: Callable[..., T], *args: Any,
                   timeout: float) -> T:
        """Await ``fn(*args)`` run in a worker thread, for at most ``timeout``.

        On timeout the thread goes on until libvirt returns; its result is
        dropped.

        :raises PoolExhausted: see :meth:`submit`
        :raises TimeoutError: ``timeout`` passed first
        """
        future = self.submit(fn, *args)
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout)

    def close(self) -> None:
        """Close the connection and stop the pool; idempotent.

        Calls still running in C are not waited for; they end on their own
        libvirt timeouts.
        """
        with self._busy_lock:
            self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._conn_lock:
            conns, self._conns = self._conns, set()
            self._generation += 1
        for conn in conns:
            self._close_quietly(conn)
