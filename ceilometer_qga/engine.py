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

"""The one engine that runs a collector on a guest: native or fallback.

Collectors only *declare* what they need (:mod:`ceilometer_qga.collectors.
base`); this module decides, once per guest per sweep, which source each
due collector uses (:func:`plan`), and runs it (:func:`run`).  The same
plan tells :mod:`ceilometer_qga.prefetch` what to ask up front, so the
batch and the runs cannot disagree:

1. the native command, when the agent offers it (``guest-info``) and its
   reply is not :attr:`~ceilometer_qga.collectors.base.ParseResult.
   incomplete`;
2. else the declared ``/proc`` fallback -- the file through
   ``guest-file-open/read/close``, then, for collectors that declare a
   ``fallback_command``, that command once per item the file lists -- when
   ``[qga_polling] allow_file_reads`` is on, the agent offers every command
   the fallback needs, and the guest has a ``/proc`` at all
   (:func:`~ceilometer_qga.qga.os_facts.has_proc`);
3. else nothing, with the reason (for an incomplete native reply: that it
   lacks the figures, and why the fallback cannot run).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
import dataclasses
from typing import Any

from oslo_config import cfg

from ceilometer_qga.collectors import base
from ceilometer_qga.qga import capabilities as caps_mod
from ceilometer_qga.qga import errors
from ceilometer_qga.qga import guest_file
from ceilometer_qga.qga import os_facts
from ceilometer_qga.report import CollectorOutcome

FILE_COMMANDS = guest_file.FILE_COMMANDS

Execute = Callable[..., Awaitable[Any]]
ReadFile = Callable[[str], Awaitable[str]]


def fallback_blocker(collector: base.Collector,
                     caps: caps_mod.Capabilities, facts: dict[str, Any],
                     conf: cfg.ConfigOpts) -> str | None:
    """Why the collector's fallback cannot run on this guest, or None."""
    if not collector.fallback_file:
        return 'no fallback'
    if not conf.qga_polling.allow_file_reads:
        return 'file reads disabled by [qga_polling] allow_file_reads'
    if not os_facts.has_proc(facts):
        return 'no %s on a %s guest' % (collector.fallback_file,
                                        facts.get('os_id'))
    if not caps.supports_all(FILE_COMMANDS):
        return 'guest-file-* not offered for %s' % collector.fallback_file
    if (collector.fallback_command
            and not caps.supports(collector.fallback_command)):
        return '%s not offered for %s' % (collector.fallback_command,
                                          collector.fallback_file)
    return None


@dataclasses.dataclass(frozen=True)
class Plan:
    """How one collector runs on one guest in this sweep."""

    collector: base.Collector
    #: the agent offers the native command: it is sent first
    native: bool
    #: why the fallback cannot run on this guest, or None when it can
    blocker: str | None

    @property
    def prefetch_file(self) -> str | None:
        """The ``/proc`` file read up front: the fallback's, when the
        native command is not offered and the fallback can run.
        """
        if self.native or self.blocker is not None:
            return None
        return self.collector.fallback_file


def plan(collectors: list[base.Collector], caps: caps_mod.Capabilities,
         facts: dict[str, Any], conf: cfg.ConfigOpts) -> list[Plan]:
    """The plan of each collector on this guest, in their order."""
    return [Plan(c, bool(c.command and caps.supports(c.command)),
                 fallback_blocker(c, caps, facts, conf))
            for c in collectors]


async def run(step: Plan, execute: Execute,
              read_file: ReadFile) -> CollectorOutcome:
    """Run one collector on one guest as planned (see the module).

    :param execute: the guest transport's ``execute(command, arguments)``
    :param read_file: reads an allow-listed file of the guest as text
    :raises errors.QgaError: one of :data:`~ceilometer_qga.qga.errors.
        UNREACHABLE`; every other error ends up in the outcome as a skip
        with its reason
    """
    collector, blocker = step.collector, step.blocker
    name = collector.name
    native: base.ParseResult | None = None
    try:
        if step.native:
            assert collector.command is not None
            native = collector.parse(await execute(collector.command))
            if not native.incomplete:
                return CollectorOutcome(name, 'native', native)
        if blocker is None:
            result = await _run_fallback(collector, execute, read_file)
            return CollectorOutcome(name, 'fallback', result)
    except errors.UNREACHABLE:
        raise
    except errors.QgaError as exc:
        # An incomplete native result has no readings: keep what it dropped.
        return CollectorOutcome(name, 'skipped', native or base.ParseResult(),
                                str(exc), exc.state)
    except base.BadReply as exc:
        return CollectorOutcome(name, 'skipped', native or base.ParseResult(),
                                'bad reply: %s' % exc)
    if native is not None:
        # An old agent's reply without the figures, and no way around it.
        return CollectorOutcome(name, 'skipped', native, '%s reply lacks '
                                'the figures (an old agent); %s'
                                % (collector.command, blocker))
    return CollectorOutcome(name, 'skipped', base.ParseResult(),
                            _why_skipped(collector, blocker))


async def _run_fallback(collector: base.Collector, execute: Execute,
                        read_file: ReadFile) -> base.ParseResult:
    assert collector.fallback_file is not None
    text = await read_file(collector.fallback_file)
    if not collector.fallback_command:
        return collector.parse_file(text)
    replies: dict[str, Any] = {}
    failed: list[str] = []
    for item in collector.fallback_items(text):
        try:
            replies[item] = await execute(collector.fallback_command,
                                          {'path': item})
        except (errors.UNREACHABLE + (errors.AgentFrozen,)):
            raise
        except errors.CommandFailed as exc:
            # One mountpoint gone (unmounted since /proc/mounts was read)
            # or refused: the others still count.
            failed.append('%s %r failed: %s'
                          % (collector.fallback_command, item, exc))
    result = collector.parse_fallback(text, replies)
    result.dropped.extend(failed)
    return result


def _why_skipped(collector: base.Collector, blocker: str | None) -> str:
    parts = []
    if collector.command:
        parts.append('%s not offered by the agent' % collector.command)
    if collector.fallback_file and blocker:
        parts.append(blocker)
    return '; '.join(parts) or 'nothing to run'
