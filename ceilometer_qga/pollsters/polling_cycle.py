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

"""Poll every guest once per Ceilometer polling cycle, for all pollsters.

Ceilometer calls each pollster (one per meter) with the same resources and
a ``cache`` dict that lives for one polling cycle.  The first of our
pollsters to run polls every guest among the resources -- all collectors,
through our :class:`~ceilometer_qga.poller.Poller`, with its per-guest
bounds (``command_timeout``, ``guest_budget``, ``max_concurrent_guests``)
-- and leaves the samples in the cache; the others only read them.
Ceilometer signs and publishes them: nothing here signs (the samples are
only checked to encode, :func:`ceilometer_qga.pipeline.messages` without a
secret, so that a guest's bad value costs its own samples, not the
cycle's).  A
lock makes that hold when Ceilometer runs pollsters in parallel threads
(``[polling] threads_to_process_pollsters``).

One :class:`CycleSampler` per configuration object (in an agent: one per
process) outlives the cycles, so sessions, capability caches, open
connections and per-guest back-off carry over from one cycle to the next,
as they do in ``qga-polling``.

Every collector runs in every cycle: polling.yaml is the operator's
schedule here (an interval per source), so neither the collectors' declared
intervals nor ``[qga_polling] collector_intervals`` hold any meter back
(:data:`ceilometer_qga.schedule.EVERY_SWEEP`).  A 300 s filesystem
interval would silently thin out a source the operator set to 60 s, and
the tolerance it needs (half the sweep interval) is the cycle's, which a
pollster is not told.
"""

from __future__ import annotations

import asyncio
import math
import threading
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging

from ceilometer_qga.collectors import load_collectors
from ceilometer_qga import conf_check
from ceilometer_qga.discovery import load_discovery
from ceilometer_qga import observers as observers_mod
from ceilometer_qga import pipeline
from ceilometer_qga import poller as poller_mod
from ceilometer_qga.pollsters import instance_guests
from ceilometer_qga.pollsters import loop_thread
from ceilometer_qga.pollsters import options
from ceilometer_qga import sample as sample_mod
from ceilometer_qga import schedule

LOG = logging.getLogger(__name__)

#: key of our entry in Ceilometer's per-cycle cache
CACHE_KEY = 'ceilometer_qga.guests'

#: allowance on top of the guests' budgets for discovery and bookkeeping
SWEEP_MARGIN = 10.0

#: instance id -> meter name -> our samples of that instance in this cycle
CycleSamples = dict[str, dict[str, list[sample_mod.Sample]]]


class CycleSampler:
    """Our poller, driven by Ceilometer's polling cycles.

    :raises ValueError: the configuration is unusable (unknown discovery or
        collector, the libvirt binding missing...); the message names the
        option.  Nothing changes that without a restart.
    """

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        options.register_opts(conf)
        self.conf = conf
        channels = load_discovery(conf)
        try:
            collectors = load_collectors(conf)
        except BaseException:
            channels.close()
            raise
        self.guests = instance_guests.InstanceGuests(conf, channels)
        self.poller = poller_mod.Poller(conf, collectors,
                                        intervals=schedule.EVERY_SWEEP,
                                        discovery=channels)
        self.loop = loop_thread.LoopThread('qga-pollsters')
        #: sweep observers ([guest_agent_events] enabled...), fed each
        #: sweep as in qga-polling
        self.observers = observers_mod.load_observers(conf)
        for observer in self.observers:
            observer.bind(self.poller, self.loop.loop)
        self._lock = threading.Lock()
        #: sweeps run, for logs and tests
        self.sweeps = 0

    def samples(self, cache: dict, instances: list[Any]) -> CycleSamples:
        """Our samples of ``instances`` in this cycle; polls only once.

        Instances already polled in this cycle (same ``cache``) are not
        polled again; the others are polled together in one sweep.
        """
        with self._lock:
            cycle: CycleSamples = cache.setdefault(CACHE_KEY, {})
            todo = [i for i in instances if i.id not in cycle]
            if todo:
                cycle.update(self._sweep(todo))
            return cycle

    def sweep_bound(self, count: int) -> float:
        """Seconds a sweep of ``count`` guests may take at most."""
        opts = self.conf.qga_polling
        waves = math.ceil(count / opts.max_concurrent_guests)
        return waves * opts.guest_budget + SWEEP_MARGIN

    def _sweep(self, instances: list[Any]) -> CycleSamples:
        polled: CycleSamples = {i.id: {} for i in instances}
        bound = self.sweep_bound(len(instances))
        try:
            result = self.loop.run(self._poll(instances), bound)
        except TimeoutError:
            # Every guest has its own budget, so only discovery hanging
            # (libvirt) gets here: the instances get nothing this cycle.
            LOG.error('Polling %d guest agent(s) took longer than %.1f s; '
                      'abandoned for this cycle', len(instances), bound)
            return polled
        except Exception:
            # The sweep contains per-guest failures itself, so this is a
            # bug; the instances still count as polled, or each of the 26
            # pollsters would run the failing sweep again in this cycle.
            LOG.exception('Polling %d guest agent(s) failed',
                          len(instances))
            return polled
        finally:
            self.sweeps += 1
        observers_mod.notify(self.observers, result)
        for sample in result.samples:
            instance_id = sample.resource_metadata.get('instance_id')
            meters = polled.get(instance_id)
            if meters is not None:
                meters.setdefault(sample.name, []).append(sample)
        return polled

    async def _poll(self, instances: list[Any]) -> poller_mod.SweepResult:
        guests = await asyncio.to_thread(self.guests.discover, instances)
        result = await self.poller.sweep(guests)
        pipeline.messages(self.poller, result, None)
        return result

    def close(self) -> None:
        """Close sessions and connections, stop the loop thread."""
        try:
            self.loop.run(self.poller.close(),
                          self.conf.qga_polling.shutdown_timeout + 1)
        except TimeoutError:
            LOG.warning('Closing the guest-agent sessions timed out')
        finally:
            observers_mod.close(self.observers)
            self.guests.close()
            self.loop.stop()


#: (configuration, its sampler); in an agent there is one configuration
#: object, so one entry (a ConfigOpts is not hashable, hence a list)
_samplers: list[tuple[cfg.ConfigOpts, CycleSampler]] = []
_samplers_lock = threading.Lock()
#: configuration errors already logged, so that the 26 pollsters of a
#: cycle log an unusable configuration once, not 26 times
_logged_errors: set[str] = set()
#: (configuration, its first bad option) for the configurations whose
#: pollsters are disabled
_disabled: list[tuple[cfg.ConfigOpts, Exception]] = []


def check_options(conf: cfg.ConfigOpts) -> None:
    """Check our options on ``conf`` once; what every pollster's load asks.

    Each bad option is logged once (ERROR, naming it), and then reads its
    default: the agent reads every registered option again later
    (cotyledon logs them all in each worker) and would log our bad value
    as a traceback.  The pollsters of ``conf`` stay disabled all the same:
    the first error is remembered and raised for each of them.

    :raises ConfigError: the first bad option
    """
    with _samplers_lock:
        for known, error in _disabled:
            if known is conf:
                raise error
        found = conf_check.problems(conf)
        for group, opt, error in found:
            log_disabled(error)
            if opt is not None:
                conf.set_override(opt.dest, opt.default, group=group)
        if found:
            _disabled.append((conf, found[0][2]))
            raise found[0][2]


def log_disabled(exc: Exception) -> None:
    """Log once per process that our pollsters are disabled, and why.

    Each of our 26 pollsters finds the same error; Ceilometer logs an
    ``ExtensionLoadError`` at DEBUG only, so this ERROR line is the one
    the operator sees.
    """
    if str(exc) not in _logged_errors:
        _logged_errors.add(str(exc))
        LOG.error('Guest-agent pollsters disabled: %s', exc)


def for_conf(conf: cfg.ConfigOpts) -> CycleSampler:
    """The :class:`CycleSampler` of ``conf``, built on first use.

    An unusable configuration is not remembered: each call tries again
    (the pollsters then report it as permanent, and Ceilometer stops
    asking for those resources); the error is logged once.

    :raises ValueError: see :class:`CycleSampler`.
    """
    with _samplers_lock:
        for known, sampler in _samplers:
            if known is conf:
                return sampler
        try:
            sampler = CycleSampler(conf)
        except ValueError as exc:
            log_disabled(exc)
            raise
        _samplers.append((conf, sampler))
    return sampler


def close_all() -> None:
    """Close every CycleSampler (tests, and an agent that wants to tidy up)."""
    with _samplers_lock:
        samplers = [sampler for _conf, sampler in _samplers]
        _samplers.clear()
        _logged_errors.clear()
        _disabled.clear()
    for sampler in samplers:
        sampler.close()
