"""``qga-polling``: the poller service of a compute node.

``qga-polling --config-file /etc/qga-monitor/qga-polling.conf`` sweeps every
``[qga_polling] interval`` seconds until SIGTERM, then finishes or abandons
the running sweep within ``[qga_polling] shutdown_timeout`` seconds, flushes
the publishers and exits.  ``--once`` runs one sweep, flushes and exits 0.

The periodic service runs on oslo.service's threading backend (no
eventlet): the launcher supervises one worker process, whose
:class:`PollingService` runs an asyncio loop in a thread.  The backend is
chosen when the ``ceilometer_qga.cmd`` package is imported (see
:mod:`ceilometer_qga.cmd.concurrency`), before the plugins are.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading

from oslo_config import cfg
from oslo_log import log as logging
from oslo_service import backend

from ceilometer_qga.cmd import concurrency
from ceilometer_qga import conf as conf_mod
from ceilometer_qga import runner as runner_mod

LOG = logging.getLogger(__name__)

cli_opts = [
    cfg.BoolOpt('once', default=False,
                help='Run one sweep, flush the publishers and exit.'),
]


def prepare(argv: list[str] | None) -> cfg.ConfigOpts:
    """Parse the command line and config files, set up logging."""
    conf = cfg.ConfigOpts()
    logging.register_options(conf)
    conf_mod.register_opts(conf)
    conf.register_cli_opts(cli_opts)
    conf(argv, project='qga-monitor', prog='qga-polling')
    logging.setup(conf, 'qga-polling')
    return conf


async def run_once(conf: cfg.ConfigOpts,
                   runner: runner_mod.SweepRunner | None = None) -> int:
    """One sweep, flushed; the exit code (0 unless flushing failed).

    :param runner: one already built from ``conf`` (built here if None)
    """
    runner = runner or runner_mod.SweepRunner(conf)
    try:
        result = await runner.run_once()
        flushed = await runner.flush(conf.qga_polling.shutdown_timeout)
    finally:
        await runner.close()
    LOG.info('One sweep done: %d guests (%d legacy, without agent '
             'channel), %d samples', len(result.reports), result.legacy,
             len(result.samples))
    if not flushed:
        LOG.error('Some samples could not be delivered before exiting')
        return 1
    return 0


class PollingService:
    """Periodic sweeps in an asyncio loop on a thread of its own.

    Implements oslo.service's ServiceBase protocol (start/stop/wait/reset);
    the base class is bound at run time because oslo.service picks its
    backend on first use.
    """

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._started = threading.Event()

    def start(self) -> None:
        """Start sweeping in a background thread."""
        self._thread = threading.Thread(target=self._main, name='qga-sweeps',
                                        daemon=True)
        self._thread.start()
        self._started.wait(5)

    def stop(self, graceful: bool = False) -> None:
        """Ask the loop to stop and wait for it within the bound."""
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(self.conf.qga_polling.shutdown_timeout * 2 + 1)

    def wait(self) -> None:
        """Block until the loop has ended."""
        if self._thread is not None:
            self._thread.join()

    def reset(self) -> None:
        """Nothing is cached that a SIGHUP should drop."""

    def _main(self) -> None:
        asyncio.run(self._sweeps())

    async def _sweeps(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._started.set()
        opts = self.conf.qga_polling
        runner = runner_mod.SweepRunner(self.conf)
        try:
            while not self._stopping.is_set():
                started = self._loop.time()
                sweep = asyncio.ensure_future(runner.run_once())
                stop = asyncio.ensure_future(self._stopping.wait())
                await asyncio.wait({sweep, stop},
                                   return_when=asyncio.FIRST_COMPLETED)
                if not sweep.done():
                    # Stopping: let the sweep finish within the bound, else
                    # abandon it; guests never hold up the shutdown.
                    done, _ = await asyncio.wait({sweep},
                                                 timeout=opts.shutdown_timeout)
                    if not done:
                        LOG.warning('Abandoning the running sweep to stop')
                        sweep.cancel()
                        await asyncio.gather(sweep, return_exceptions=True)
                elif sweep.exception() is not None:
                    LOG.error('Sweep failed: %r', sweep.exception())
                stop.cancel()
                if self._stopping.is_set():
                    break
                delay = started + opts.interval - self._loop.time()
                try:
                    await asyncio.wait_for(self._stopping.wait(),
                                           max(delay, 0))
                except asyncio.TimeoutError:
                    pass
        finally:
            await runner.flush(opts.shutdown_timeout)
            await runner.close()
            LOG.info('qga-polling stopped')


#: set in the environment of the fresh interpreter, so that it never loops
RESTARTED_ENV = 'QGA_POLLING_RESTARTED'


def _restart_in_fresh_interpreter(argv: list[str]) -> int:
    """Run ``qga-polling argv`` in a new interpreter, in place of this one.

    Only when main() is called from a process that imported oslo.messaging
    (or oslo.service) before ``ceilometer_qga.cmd``: its backend is then
    fixed to eventlet for good, and the service needs the threading one.
    The console script never gets here.

    :returns: 1 (and does not restart) when this already is the restarted
        interpreter: something imported at its start picks the backend
    """
    chosen = backend.get_backend_type().value
    if os.environ.get(RESTARTED_ENV):
        LOG.error('oslo.service backend set to %r before qga-polling could '
                  'choose the threading one, even in a fresh interpreter '
                  '(sitecustomize?)', chosen)
        return 1
    LOG.warning('oslo.service backend already set to %r by an earlier import; '
                'restarting qga-polling in a fresh interpreter', chosen)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, '-m', 'ceilometer_qga.cmd.polling', *argv],
              dict(os.environ, **{RESTARTED_ENV: '1'}))
    return 1  # not reached: execve() returns only by raising


def main(argv: list[str] | None = None) -> int:
    """Console entry point of ``qga-polling``."""
    argv = sys.argv[1:] if argv is None else argv
    conf = prepare(argv)
    if not conf.once and not concurrency.select_threading():
        return _restart_in_fresh_interpreter(argv)
    try:
        # Validate everything before forking a worker or polling.
        runner = runner_mod.SweepRunner(conf)
    except ValueError as exc:
        LOG.error('Configuration error: %s', exc)
        print('qga-polling: configuration error: %s' % exc, file=sys.stderr)
        return 2
    if conf.once:
        return asyncio.run(run_once(conf, runner))
    # The worker process builds its own runner after the fork: connections
    # and threads do not survive it.
    from oslo_service import service
    svc_class = type('QgaPollingService', (PollingService,
                                           service.ServiceBase), {})
    launcher = service.launch(conf, svc_class(conf), workers=1,
                              restart_method='mutate')
    return launcher.wait() or 0


if __name__ == '__main__':
    sys.exit(main())
