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

"""``qga-polling``: the poller service of a compute node.

``qga-polling --config-file /etc/qga-monitor/qga-polling.conf`` sweeps every
``[qga_polling] interval`` seconds until SIGTERM, then finishes or abandons
the running sweep within ``[qga_polling] shutdown_timeout`` seconds, flushes
the publishers and exits.  ``--once`` runs one sweep, flushes and exits 0 (1 if guest discovery
failed or samples could not be delivered).  A configuration error is one
line naming the option, and exit code 2.

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
# After ceilometer_qga.cmd chose the threading backend (the package imports
# its concurrency module first): the service classes are the backend's.
from oslo_service import service

from ceilometer_qga.cmd import concurrency
from ceilometer_qga.cmd import garbage_collection
from ceilometer_qga import conf as conf_mod
from ceilometer_qga import conf_check
from ceilometer_qga import pipeline as pipeline_mod

LOG = logging.getLogger(__name__)

cli_opts = [
    cfg.BoolOpt('once', default=False,
                help='Run one sweep, flush the publishers and exit.'),
]


#: exit code of a configuration error (as argparse's usage errors)
EXIT_CONFIG = 2


def prepare(argv: list[str] | None) -> cfg.ConfigOpts:
    """Parse the command line and config files, set up logging.

    :raises ConfigError: a configuration file is missing or unparseable,
        or an option has a bad value (the message names it)
    """
    conf = cfg.ConfigOpts()
    logging.register_options(conf)
    conf_mod.register_opts(conf)
    conf.register_cli_opts(cli_opts)
    try:
        conf(argv, project='qga-monitor', prog='qga-polling')
    except (cfg.ConfigFilesNotFoundError, cfg.ConfigFileParseError,
            cfg.ConfigFilesPermissionDeniedError) as exc:
        raise conf_check.ConfigError(str(exc)) from None
    # Before logging.setup: a bad value of ours must not wait for the
    # first sweep, nor a bad log option become a traceback.
    conf_check.check(conf)
    try:
        logging.setup(conf, 'qga-polling')
    except (ValueError, cfg.Error, OSError) as exc:
        raise conf_check.ConfigError('logging options: %s' % exc) from None
    return conf


def config_error(exc: Exception, logged: bool) -> int:
    """Report a configuration error in one line; the exit code.

    :param logged: logging is set up, so the error goes to the log too
    """
    if logged:
        LOG.error('Configuration error: %s', exc)
    print('qga-polling: configuration error: %s' % exc, file=sys.stderr)
    return EXIT_CONFIG


async def run_once(conf: cfg.ConfigOpts,
                   runner: pipeline_mod.Pipeline | None = None) -> int:
    """One sweep, flushed; the exit code (0 unless flushing failed).

    :param runner: one already built from ``conf`` (built here if None)
    """
    runner = runner or pipeline_mod.Pipeline(conf)
    garbage_collection.tune_for_sweeps()
    try:
        result = await runner.run_once()
        flushed = await runner.flush(conf.qga_polling.shutdown_timeout)
    finally:
        await runner.close()
    if result.discovery_error is not None:
        # "No guests" and "cannot tell which guests" must differ for cron
        # jobs and health checks.
        LOG.error('One sweep failed: guest discovery failed: %s',
                  result.discovery_error)
        print('qga-polling: guest discovery failed: %s'
              % result.discovery_error, file=sys.stderr)
        return 1
    LOG.info('One sweep done: %d guests (%d legacy, without agent '
             'channel), %d samples', len(result.reports), result.legacy,
             len(result.samples))
    if not flushed:
        LOG.error('Some samples could not be delivered before exiting')
        return 1
    return 0


class PollingService(service.ServiceBase):
    """Periodic sweeps in an asyncio loop on a thread of its own.

    oslo.service's ServiceBase (start/stop/wait/reset), of the threading
    backend that :mod:`ceilometer_qga.cmd.concurrency` selected.
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
        runner = pipeline_mod.Pipeline(self.conf)
        garbage_collection.tune_for_sweeps()
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
    try:
        conf = prepare(argv)
    except ValueError as exc:
        return config_error(exc, logged=False)
    if not conf.once and not concurrency.select_threading():
        return _restart_in_fresh_interpreter(argv)
    try:
        # Validate everything before forking a worker or polling.
        runner = pipeline_mod.Pipeline(conf)
    except ValueError as exc:
        return config_error(exc, logged=True)
    if conf.once:
        return asyncio.run(run_once(conf, runner))
    # The worker process builds its own runner after the fork: connections
    # and threads do not survive it.
    launcher = service.launch(conf, PollingService(conf), workers=1,
                              restart_method='mutate')
    return launcher.wait() or 0


if __name__ == '__main__':
    sys.exit(main())
