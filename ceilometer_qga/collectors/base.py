"""The collector contract: declare a command, parse its reply, name meters.

A collector is a small declarative class, in the spirit of Ceilometer's
``GenericComputePollster``: it *declares* which qga command it needs
(:attr:`Collector.command`), which ``/proc`` file can stand in when the agent
lacks that command (:attr:`Collector.fallback_file`), which meters it emits
(:attr:`Collector.meters`), and supplies two pure functions that turn a
reply into :class:`Reading` objects.  The poller's engine owns everything
else once: capability checks, the fallback decision, timeouts, validation of
the numbers, resource ids and sample construction.

Rules for ``parse``/``parse_file``:

* They are pure: no I/O, no clock, no logging of their own; they may be
  called with anything (the guest is untrusted) and must then either return
  readings or raise :class:`BadReply`.
* Values that make no sense (negative, NaN, used > total, wrong type) are
  left out, and the reason goes into :attr:`ParseResult.dropped`; the engine
  logs it as a warning.  Never return a made-up value.
* ``Reading.item`` is the per-resource key (mountpoint, disk, interface
  name) or None for an instance-level meter.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

from oslo_config import cfg

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

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf

    @abc.abstractmethod
    def parse(self, reply: Any) -> ParseResult:
        """Turn the ``return`` value of :attr:`command` into readings."""

    def parse_file(self, text: str) -> ParseResult:
        """Turn the content of :attr:`fallback_file` into readings."""
        raise NotImplementedError(self.__class__.__name__)
