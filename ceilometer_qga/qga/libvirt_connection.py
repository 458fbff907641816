"""One shared read-write libvirt connection, and the threads that use it.

Every libvirt call blocks in C, so none may run on the event loop.  All the
libvirt transports of a poller share one :class:`ConnectionProvider`: one
connection to ``[libvirt_discovery] uri`` (a ``virConnect`` is safe to use
from several threads at once) and one pool of
``[libvirt_discovery] max_threads`` worker threads.

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
The connection is opened lazily, in a worker thread, on first use.  A call
that fails because the connection itself is gone (:func:`is_disconnect`)
hands it back with :meth:`reset`; the next :meth:`get` opens a new one.
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
    """A lazily opened read-write libvirt connection plus its thread pool.

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
        self._conn: Any = None
        self._conn_lock = threading.Lock()
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._closed = False

    @property
    def busy(self) -> int:
        """Calls submitted and not finished (running or about to run)."""
        return self._busy

    def get(self) -> Any:
        """Return the open connection, opening it first if needed.

        Blocking: call it from a worker thread (inside :meth:`submit`).

        :raises libvirt.libvirtError: the connection cannot be opened
        :raises ProviderClosed: after :meth:`close`
        """
        with self._conn_lock:
            if self._closed:
                raise ProviderClosed('libvirt connection provider is closed')
            if self._conn is None:
                self._conn = self.libvirt.open(self.uri)
                LOG.debug('libvirt read-write connection to %s opened',
                          self.uri)
            return self._conn

    def reset(self, conn: Any) -> None:
        """Forget ``conn`` if it is still the current one (it broke).

        The next :meth:`get` opens a new connection.  Blocking.
        """
        with self._conn_lock:
            if conn is None or self._conn is not conn:
                return  # another thread already replaced it
            self._conn = None
        LOG.info('libvirt connection to %s lost; reopening on next use',
                 self.uri)
        try:
            conn.close()
        except self.libvirt.libvirtError:
            # It is broken already; closing is best effort.
            LOG.debug('closing the broken libvirt connection failed',
                      exc_info=True)

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
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except self.libvirt.libvirtError:
                LOG.debug('closing the libvirt connection failed',
                          exc_info=True)
