"""The one engine that runs a collector on a guest: native or fallback.

Collectors only *declare* what they need (:mod:`.base`); this module decides,
once for all of them, which source to use on a given guest and runs it:

1. the native command, when the agent offers it (``guest-info``) and its
   reply is not :attr:`~.base.ParseResult.incomplete`;
2. else the declared ``/proc`` fallback -- the file through
   ``guest-file-open/read/close``, then, for collectors that declare a
   ``fallback_command``, that command once per item the file lists -- when
   ``[qga_polling] allow_file_reads`` is on, the agent offers every command
   the fallback needs, and the guest has a ``/proc`` at all;
3. else nothing, with the reason (for an incomplete native reply: that it
   lacks the figures, and why the fallback cannot run).

Whether the guest has a ``/proc`` is the OS facts' call: a Windows agent
(virtio-win qemu-ga, ``guest-get-osinfo`` id ``mswindows``) has none, and
asking it to open ``/proc/meminfo`` would only cost a failing
``guest-file-open`` per collector per sweep.  A guest whose OS is unknown (an
agent without ``guest-get-osinfo``, older than 2.10) is taken for Linux,
as the 2013 script did.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from oslo_config import cfg

from ceilometer_qga.collectors import base
from ceilometer_qga.qga import capabilities as caps_mod
from ceilometer_qga.qga import errors

FILE_COMMANDS = ('guest-file-open', 'guest-file-read', 'guest-file-close')

#: ``guest-get-osinfo`` ids of guests without a ``/proc``
NO_PROC_OS_IDS = frozenset({'mswindows'})

#: errors after which the guest as a whole is unreachable for this sweep
GUEST_LEVEL_ERRORS = (errors.AgentNotConnected, errors.AgentTimeout,
                      errors.ProtocolError)

Execute = Callable[..., Awaitable[Any]]
ReadFile = Callable[[str], Awaitable[str]]


@dataclasses.dataclass
class CollectorOutcome:
    """What one collector produced on one guest in one sweep."""

    name: str
    source: str  # 'native', 'fallback' or 'skipped'
    result: base.ParseResult
    reason: str | None = None
    #: the agent_state of the error that made it skip, if one did
    error_state: str | None = None


def has_proc(facts: dict[str, Any]) -> bool:
    """True unless the OS facts say the guest has no ``/proc`` (Windows)."""
    return facts.get('os_id') not in NO_PROC_OS_IDS


def fallback_blocker(collector: base.Collector,
                     caps: caps_mod.Capabilities, facts: dict[str, Any],
                     conf: cfg.ConfigOpts) -> str | None:
    """Why the collector's fallback cannot run on this guest, or None."""
    if not collector.fallback_file:
        return 'no fallback'
    if not conf.qga_polling.allow_file_reads:
        return 'file reads disabled by [qga_polling] allow_file_reads'
    if not has_proc(facts):
        return 'no %s on a %s guest' % (collector.fallback_file,
                                        facts.get('os_id'))
    if not caps.supports_all(FILE_COMMANDS):
        return 'guest-file-* not offered for %s' % collector.fallback_file
    if (collector.fallback_command
            and not caps.supports(collector.fallback_command)):
        return '%s not offered for %s' % (collector.fallback_command,
                                          collector.fallback_file)
    return None


async def run(collector: base.Collector, caps: caps_mod.Capabilities,
              facts: dict[str, Any], conf: cfg.ConfigOpts,
              execute: Execute, read_file: ReadFile) -> CollectorOutcome:
    """Run one collector on one guest (see the module docstring).

    :param execute: the guest transport's ``execute(command, arguments)``
    :param read_file: reads an allow-listed file of the guest as text
    :raises errors.QgaError: one of :data:`GUEST_LEVEL_ERRORS`; every other
        error ends up in the outcome as a skip with its reason
    """
    name = collector.__class__.__name__
    native: base.ParseResult | None = None
    try:
        if collector.command and caps.supports(collector.command):
            native = collector.parse(await execute(collector.command))
            if not native.incomplete:
                return CollectorOutcome(name, 'native', native)
        blocker = fallback_blocker(collector, caps, facts, conf)
        if blocker is None:
            result = await _run_fallback(collector, execute, read_file)
            return CollectorOutcome(name, 'fallback', result)
    except GUEST_LEVEL_ERRORS:
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
        except (GUEST_LEVEL_ERRORS + (errors.AgentFrozen,)):
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
