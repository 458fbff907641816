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

"""The collector contract: declare a command, parse its reply, name meters.

A collector is a small declarative class, in the spirit of Ceilometer's
``GenericComputePollster``: it *declares* which qga command it needs
(:attr:`Collector.command`), which ``/proc`` file can stand in when the agent
lacks that command (:attr:`Collector.fallback_file`), optionally a read-only
command to run once per item that file lists (:attr:`Collector.
fallback_command`, e.g. the patched agents' ``guest-get-statvfs`` per
mountpoint of ``/proc/mounts``), which meters it emits
(:attr:`Collector.meters`), and supplies pure functions that turn replies
into :class:`Reading` objects.  The engine (:mod:`.engine`) owns everything
else once: capability checks, the fallback decision (native command, else
the fallback when file reads are allowed and the guest has a ``/proc``),
timeouts, validation of the numbers, resource ids and sample construction.

A native reply that lacks the meters altogether (fsinfo without sizes from
an agent older than 3.0, interfaces without statistics from one older than
2.11) sets :attr:`ParseResult.incomplete`; the engine then runs the
fallback instead when it can.

Rules for ``parse``/``parse_file``:

* They are pure: no I/O, no clock, no logging of their own; they may be
  called with anything (the guest is untrusted) and must then either return
  readings or raise :class:`BadReply`.
* Values that make no sense (negative, NaN, used > total, wrong type) are
  left out, and the reason goes into :attr:`ParseResult.dropped`; the engine
  logs it as a warning.  Never return a made-up value.
* ``Reading.item`` is the per-resource key (mountpoint, disk, interface
  name) or None for an instance-level meter.

How often a collector runs is declared too: :attr:`Collector.interval` is
the least number of seconds between two runs on one guest, 0 (the default)
for every sweep.  Counters and gauges that move all the time run in every
sweep; what changes seldom (filesystem sizes, online vCPUs) declares a
longer interval, as KubeVirt's agent poller reads fsinfo every 300 s
(``pkg/virt-launcher/virtwrap/agent-poller/agent_poller.go``).  The
operator overrides it by collector name (``[qga_polling]
collector_intervals``); the session applies it (:mod:`ceilometer_qga.
schedule`).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

from oslo_config import cfg

from ceilometer_qga import plugins

#: a collector's option group is ``<name>_collector``
GROUP_SUFFIX = 'collector'

GAUGE = 'gauge'
CUMULATIVE = 'cumulative'
DELTA = 'delta'


@dataclasses.dataclass(frozen=True)
class Meter:
    """A meter of the catalogue (:mod:`ceilometer_qga.meters`)."""

    name: str
    type: str
    unit: str
    #: 'instance', 'filesystem', 'disk' or 'interface'
    scope: str = 'instance'


@dataclasses.dataclass(frozen=True)
class Reading:
    """One value read from a guest, before it becomes a sample."""

    meter: str
    volume: float | int
    item: str | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ParseResult:
    """Readings from one reply, plus what was dropped and why."""

    readings: list[Reading] = dataclasses.field(default_factory=list)
    dropped: list[str] = dataclasses.field(default_factory=list)
    #: the reply has the shape of the command but none of the figures the
    #: meters need (an old agent): the engine prefers the fallback then
    incomplete: bool = False


class BadReply(ValueError):
    """The reply has the wrong shape altogether (not just one bad value)."""


class Collector(abc.ABC):
    """Base class of every collector (entry points ceilometer_qga.collectors).

    Subclasses set the class attributes and implement :meth:`parse`; those
    with a fallback implement :meth:`parse_file` too.
    """

    #: meters this collector can emit
    meters: ClassVar[tuple[Meter, ...]] = ()
    #: native qga command (sent without arguments), or None: then the
    #: collector has no native command, the engine always uses
    #: ``fallback_file`` and never calls :meth:`parse`
    command: ClassVar[str | None] = None
    #: allow-listed /proc file read when ``command`` is not available
    fallback_file: ClassVar[str | None] = None
    #: read-only command run with ``{'path': item}`` for every item that
    #: :meth:`fallback_items` lists in ``fallback_file``; None: the file
    #: alone gives the readings (:meth:`parse_file`)
    fallback_command: ClassVar[str | None] = None
    #: least seconds between two runs on one guest, unless ``[qga_polling]
    #: collector_intervals`` says otherwise; 0: every sweep
    interval: ClassVar[float] = 0

    #: this collector's own options, in group ``[<name>_collector]``
    #: (registered by :func:`~ceilometer_qga.collectors.load_collectors`)
    CONFIG_OPTS: ClassVar[list[cfg.Opt]] = []

    def __init__(self, conf: cfg.ConfigOpts, opts: Any = None) -> None:
        """:param conf: the poller's configuration (``[qga_polling]``)
        :param opts: this collector's own group (its :attr:`CONFIG_OPTS`);
            None (a collector built directly) registers that group as
            the loader would
        """
        self.conf = conf
        #: the collector's one name: its entry point's (set by
        #: :func:`~ceilometer_qga.collectors.load_collectors`); outcomes,
        #: ``[qga_polling] collector_intervals`` and logs use it.  Built
        #: directly, the class name without ``Collector``, lower case --
        #: the rule the entry points of setup.cfg follow.
        self.name = type(self).__name__.removesuffix('Collector').lower()
        if opts is None:
            opts = plugins.register(
                conf, plugins.group_name(self.name, GROUP_SUFFIX),
                self.CONFIG_OPTS)
        #: this collector's group
        self.opts = opts

    @abc.abstractmethod
    def parse(self, reply: Any) -> ParseResult:
        """Turn the ``return`` value of :attr:`command` into readings."""

    def parse_file(self, text: str) -> ParseResult:
        """Turn the content of :attr:`fallback_file` into readings."""
        raise NotImplementedError(self.__class__.__name__)

    def fallback_items(self, text: str) -> list[str]:
        """Items of :attr:`fallback_file` to run :attr:`fallback_command` on.

        At most ``[qga_polling] max_items``.  Only for collectors that set
        :attr:`fallback_command`.
        """
        raise NotImplementedError(self.__class__.__name__)

    def parse_fallback(self, text: str, replies: dict[str, Any]
                       ) -> ParseResult:
        """Readings from the file and the ``{item: reply}`` of each item.

        Items whose command failed are missing from ``replies``.
        """
        raise NotImplementedError(self.__class__.__name__)
