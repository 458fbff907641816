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

"""Ceilometer pollsters for the guest-agent meters (``ceilometer.poll.compute``).

Modelled on Ceilometer's ``compute/pollsters/instance_stats.py``: each meter
is a class that only declares its name; :class:`GuestAgentPollster` owns
the rest once.  Type and unit are not restated here: they come from the
catalogue our collectors declare (their ``meters``) plus the engine's
liveness meters, so a pollster and ``qga-polling`` always agree.

What the base class does in ``get_samples``:

* resources are the instances of Ceilometer's ``local_instances``
  discovery (``NovaLikeServer``), its ``default_discovery``;
* each guest is polled once per polling cycle for all pollsters
  (:mod:`.polling_cycle`, sharing Ceilometer's per-cycle ``cache``), with
  our bounds, sessions and back-off, on our own connections: agent
  commands need a read-write libvirt connection, Ceilometer's is
  read-only;
* samples are ``ceilometer.sample.Sample`` built by Ceilometer's
  ``make_sample_from_instance``, so ``resource_metadata`` holds what
  native compute samples hold, plus the per-item metadata (mountpoint,
  disk, interface...), the guest OS facts and the agent state; resource
  ids are ours (``<uuid>-<escaped item>`` for per-item meters);
* a guest whose agent is down, hung or not connected gives
  ``guest.agent.up`` 0 and nothing else: that is an observation, not an
  error.  A bad option disables the pollsters at load (one ERROR line
  naming it); ``PollsterPermanentError`` is raised when the poller cannot
  be built at the first poll (the libvirt binding is missing...).

This module imports Ceilometer, and only Ceilometer's agent imports it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ceilometer.compute.pollsters import util
from ceilometer.polling import plugin_base
from ceilometer import sample as ceilometer_sample

from ceilometer_qga.collectors import base as collector_base
from ceilometer_qga import meters
from ceilometer_qga.pollsters import instance_guests
from ceilometer_qga.pollsters import options
from ceilometer_qga.pollsters import polling_cycle
from ceilometer_qga import sample as sample_mod


def catalogue() -> dict[str, collector_base.Meter]:
    """Every meter of every installed collector, and the liveness meters.

    Read from the collector classes, so no collector has to be enabled in
    ``[qga_polling] collectors``.
    """
    return meters.installed()


class GuestAgentPollster(plugin_base.PollsterBase):
    """Base class: one pollster per meter, all fed by one poll per guest.

    Subclasses set :attr:`meter_name` and nothing else.
    """

    #: the catalogue meter this pollster reports
    meter_name: str = ''

    def setup_environment(self) -> None:
        """Check the meter is in the catalogue; register and check our options.

        Every option is read and checked here, at load (as ``qga-polling``
        does at start): a bad one makes Ceilometer skip the pollster
        (``ExtensionLoadError``, which it logs at DEBUG only), so the
        reason is logged once at ERROR, naming the option, for all 26
        pollsters.  The poller itself (discovery, libvirt) is built on the
        first poll: libvirt may not be up when the agent starts.

        :raises ConfigError: a bad option (Ceilometer wraps it)
        """
        super().setup_environment()
        meter = catalogue().get(self.meter_name)
        if meter is None:
            raise LookupError('%s: no collector declares meter %r'
                              % (self.__class__.__name__, self.meter_name))
        self.meter = meter
        options.register_opts(self.conf)
        polling_cycle.check_options(self.conf)

    @property
    def default_discovery(self) -> str:
        """Ceilometer's compute instances on this host."""
        return 'local_instances'

    @property
    def sample_type(self) -> str:
        """gauge or cumulative, from the catalogue."""
        return self.meter.type

    @property
    def sample_unit(self) -> str:
        """The unit, from the catalogue."""
        return self.meter.unit

    def get_samples(self, manager: Any, cache: dict,
                    resources: list[Any]) -> Iterator[ceilometer_sample.Sample]:
        """Samples of this meter for every instance in ``resources``.

        :raises PollsterPermanentError: the configuration cannot work
            (logged once, with the reason, by the cycle poller).
        """
        try:
            cycle = polling_cycle.for_conf(self.conf)
        except ValueError as exc:
            raise plugin_base.PollsterPermanentError(resources) from exc
        polled = cycle.samples(cache, resources)
        for instance in resources:
            for ours in polled.get(instance.id, {}).get(self.meter_name, ()):
                yield self._to_ceilometer(instance, ours)

    def _to_ceilometer(self, instance: Any,
                       ours: sample_mod.Sample) -> ceilometer_sample.Sample:
        # Instance-level keys come from Ceilometer, as in native samples;
        # ours add the item, the OS facts and the agent state.
        extra = {key: value for key, value in ours.resource_metadata.items()
                 if key not in instance_guests.INSTANCE_KEYS}
        return util.make_sample_from_instance(
            self.conf, instance,
            name=self.meter_name,
            type=self.sample_type,
            unit=self.sample_unit,
            volume=ours.volume,
            resource_id=ours.resource_id,
            additional_metadata=extra,
            monotonic_time=ours.monotonic_time)


# -- liveness ------------------------------------------------------------------

class AgentUpPollster(GuestAgentPollster):
    """1 when the agent answered guest-ping this cycle, else 0."""
    meter_name = 'guest.agent.up'


class AgentLatencyPollster(GuestAgentPollster):
    """guest-ping round trip."""
    meter_name = 'guest.agent.latency'


# -- per filesystem ------------------------------------------------------------

class FilesystemUsedPollster(GuestAgentPollster):
    """Bytes used, per mountpoint."""
    meter_name = 'guest.filesystem.used'


class FilesystemTotalPollster(GuestAgentPollster):
    """Bytes usable, per mountpoint."""
    meter_name = 'guest.filesystem.total'


class FilesystemUsagePollster(GuestAgentPollster):
    """Used / total, per mountpoint."""
    meter_name = 'guest.filesystem.usage'


# -- memory, CPU, load ---------------------------------------------------------

class MemoryTotalPollster(GuestAgentPollster):
    """MemTotal of the guest."""
    meter_name = 'guest.memory.total'


class MemoryAvailablePollster(GuestAgentPollster):
    """MemAvailable of the guest."""
    meter_name = 'guest.memory.available'


class MemoryUsedPollster(GuestAgentPollster):
    """Total minus available."""
    meter_name = 'guest.memory.used'


class CpuTimePollster(GuestAgentPollster):
    """Non-idle CPU time of all guest CPUs."""
    meter_name = 'guest.cpu.time'


class Load1Pollster(GuestAgentPollster):
    """1-minute load average."""
    meter_name = 'guest.load.1'


class Load5Pollster(GuestAgentPollster):
    """5-minute load average."""
    meter_name = 'guest.load.5'


class Load15Pollster(GuestAgentPollster):
    """15-minute load average."""
    meter_name = 'guest.load.15'


# -- per disk ------------------------------------------------------------------

class DiskReadBytesPollster(GuestAgentPollster):
    """Bytes read, per guest block device."""
    meter_name = 'guest.disk.read.bytes'


class DiskWriteBytesPollster(GuestAgentPollster):
    """Bytes written, per guest block device."""
    meter_name = 'guest.disk.write.bytes'


class DiskReadRequestsPollster(GuestAgentPollster):
    """Read requests, per guest block device."""
    meter_name = 'guest.disk.read.requests'


class DiskWriteRequestsPollster(GuestAgentPollster):
    """Write requests, per guest block device."""
    meter_name = 'guest.disk.write.requests'


# -- per interface -------------------------------------------------------------

class NetworkIncomingBytesPollster(GuestAgentPollster):
    """Bytes received, per guest interface."""
    meter_name = 'guest.network.incoming.bytes'


class NetworkOutgoingBytesPollster(GuestAgentPollster):
    """Bytes sent, per guest interface."""
    meter_name = 'guest.network.outgoing.bytes'


class NetworkIncomingPacketsPollster(GuestAgentPollster):
    """Packets received, per guest interface."""
    meter_name = 'guest.network.incoming.packets'


class NetworkOutgoingPacketsPollster(GuestAgentPollster):
    """Packets sent, per guest interface."""
    meter_name = 'guest.network.outgoing.packets'


class NetworkIncomingErrorsPollster(GuestAgentPollster):
    """Receive errors, per guest interface."""
    meter_name = 'guest.network.incoming.errors'


class NetworkOutgoingErrorsPollster(GuestAgentPollster):
    """Transmit errors, per guest interface."""
    meter_name = 'guest.network.outgoing.errors'


class NetworkIncomingDropsPollster(GuestAgentPollster):
    """Received packets dropped, per guest interface."""
    meter_name = 'guest.network.incoming.drops'


class NetworkOutgoingDropsPollster(GuestAgentPollster):
    """Packets dropped on transmit, per guest interface."""
    meter_name = 'guest.network.outgoing.drops'


# -- users, vCPUs --------------------------------------------------------------

class UsersPollster(GuestAgentPollster):
    """Distinct users logged in to the guest."""
    meter_name = 'guest.users'


class VcpusOnlinePollster(GuestAgentPollster):
    """vCPUs the guest has online."""
    meter_name = 'guest.vcpus.online'
