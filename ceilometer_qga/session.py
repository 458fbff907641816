"""One guest, across sweeps: its transport, capabilities, facts, back-off.

A :class:`GuestSession` lives as long as its guest is discovered.  It sends
one command at a time (the transport serialises), re-reads ``guest-info``
when the cached copy is old or the agent reconnected, and runs each
collector through the one decision the engine owns: native command if the
guest offers it, else the declared ``/proc`` fallback if file reads are
enabled and the guest can do it, else skip with a reason
(:mod:`ceilometer_qga.collectors.engine`).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import time
from typing import Any

from oslo_config import cfg

from ceilometer_qga.collectors import base as collector_base
from ceilometer_qga.collectors import engine
from ceilometer_qga.collectors import osfacts
from ceilometer_qga.guest import Channel
from ceilometer_qga.guest import Guest
from ceilometer_qga.qga import capabilities as caps_mod
from ceilometer_qga.qga import errors
from ceilometer_qga.qga import transport as transport_mod

FILE_COMMANDS = engine.FILE_COMMANDS
_FILE_CHUNK = 16384
_MAX_FILE_BYTES = 256 * 1024

GUEST_LEVEL_ERRORS = engine.GUEST_LEVEL_ERRORS
CollectorOutcome = engine.CollectorOutcome


@dataclasses.dataclass
class GuestReport:
    """Everything one sweep learnt about one guest."""

    guest: Guest
    state: str = 'ok'
    error: str | None = None
    latency_ms: float | None = None
    facts: dict[str, Any] = dataclasses.field(default_factory=dict)
    outcomes: list[CollectorOutcome] = dataclasses.field(default_factory=list)

    @property
    def up(self) -> bool:
        """The agent answered guest-ping in this sweep."""
        return self.latency_ms is not None


class GuestSession:
    """Per-guest state kept between sweeps."""

    def __init__(self, guest: Guest,
                 transport: transport_mod.Transport | None,
                 conf: cfg.ConfigOpts, no_transport_reason: str = '',
                 channel: Channel | None = None) -> None:
        self.guest = guest
        self.transport = transport
        #: the channel the transport uses (its libvirt state is checked)
        self.channel = channel
        #: agent state last logged, so that changes are logged once; None
        #: until the first sweep
        self.logged_state: str | None = None
        self.conf = conf
        self.no_transport_reason = no_transport_reason
        self.capabilities: caps_mod.Capabilities | None = None
        self.facts: dict[str, Any] = {}
        self._caps_generation = -1
        self._caps_time = 0.0
        self.failures = 0
        self.next_attempt = 0.0
        self.last_error: errors.QgaError | None = None

    # -- back-off ----------------------------------------------------------

    def backed_off(self, now: float) -> bool:
        """True while a failing guest must be left alone."""
        return now < self.next_attempt

    def record_failure(self, error: errors.QgaError, now: float) -> None:
        """Push the next attempt out: initial * 2**(failures-1), capped."""
        self.failures += 1
        self.last_error = error
        opts = self.conf.qga_polling
        delay = min(opts.backoff_initial * 2 ** min(self.failures - 1, 30),
                    opts.backoff_max)
        self.next_attempt = now + delay

    def record_success(self) -> None:
        """Forget past failures."""
        self.failures = 0
        self.next_attempt = 0.0
        self.last_error = None

    # -- one sweep ---------------------------------------------------------

    async def poll(self, collectors: list[collector_base.Collector],
                   report: GuestReport) -> None:
        """Ping, refresh capabilities, run the collectors into ``report``.

        ``report`` is filled in place so that what was gathered survives the
        poller cancelling this coroutine at the end of the guest's budget.

        :raises errors.QgaError: one of :data:`GUEST_LEVEL_ERRORS` when the
            guest cannot be reached; other errors are per collector and end
            up in the report.
        """
        assert self.transport is not None
        start = time.monotonic()
        await self.transport.execute('guest-ping')
        report.latency_ms = (time.monotonic() - start) * 1000.0
        await self._refresh_capabilities()
        report.facts = dict(self.facts)
        for collector in collectors:
            report.outcomes.append(await self._run(collector))
        if any(o.error_state == errors.AgentFrozen.state
               for o in report.outcomes):
            # Alive but quiesced (a Nova snapshot): say so, it is not dead.
            report.state = errors.AgentFrozen.state

    async def _refresh_capabilities(self) -> None:
        assert self.transport is not None
        max_age = self.conf.qga_polling.capabilities_refresh
        if (self.capabilities is not None
                and self._caps_generation == self.transport.generation
                and time.monotonic() - self._caps_time < max_age):
            return
        self.capabilities = caps_mod.parse_guest_info(
            await self.transport.execute('guest-info'))
        self._caps_generation = self.transport.generation
        self._caps_time = time.monotonic()
        facts: dict[str, Any] = {}
        if self.capabilities.version:
            facts['agent_version'] = self.capabilities.version
        for command, parse in (('guest-get-osinfo', osfacts.parse_osinfo),
                               ('guest-get-host-name',
                                osfacts.parse_hostname)):
            if self.capabilities.supports(command):
                try:
                    facts.update(parse(await self.transport.execute(command)))
                except (errors.CommandFailed, errors.CommandNotSupported):
                    pass  # facts are optional; the samples still go out
        self.facts = facts

    async def _run(self, collector: collector_base.Collector
                   ) -> CollectorOutcome:
        assert self.capabilities is not None and self.transport is not None
        return await engine.run(collector, self.capabilities, self.facts,
                                self.conf, self.transport.execute,
                                self.read_file)

    async def read_file(self, path: str) -> str:
        """Read an allow-listed /proc file through guest-file-*.

        Bounded to 256 KiB.  The handle is closed unless the agent became
        unreachable (then a close would only burn the budget again).
        """
        assert self.transport is not None
        execute = self.transport.execute
        handle = await execute('guest-file-open', {'path': path, 'mode': 'r'})
        if not isinstance(handle, int) or isinstance(handle, bool):
            raise errors.ProtocolError(self.transport.guest, 'guest-file-open',
                                       'handle is not an integer')
        reachable = True
        try:
            data = bytearray()
            while True:
                chunk = await execute('guest-file-read',
                                      {'handle': handle, 'count': _FILE_CHUNK})
                raw = _decode_chunk(self.transport.guest, chunk)
                data += raw
                if len(data) > _MAX_FILE_BYTES:
                    raise errors.ProtocolError(
                        self.transport.guest, 'guest-file-read',
                        '%s longer than %d bytes' % (path, _MAX_FILE_BYTES))
                if not raw or chunk.get('eof') is True:
                    break
            return data.decode('utf-8', 'replace')
        except GUEST_LEVEL_ERRORS:
            reachable = False
            raise
        finally:
            if reachable:
                try:
                    await execute('guest-file-close', {'handle': handle})
                except errors.QgaError:
                    pass  # the read result stands; the agent frees it on exit

    async def close(self) -> None:
        """Close the transport (the guest went away or we stop)."""
        if self.transport is not None:
            await self.transport.close()


def _decode_chunk(guest: str, chunk: Any) -> bytes:
    if not isinstance(chunk, dict) or not isinstance(chunk.get('buf-b64'),
                                                     str):
        raise errors.ProtocolError(guest, 'guest-file-read',
                                   'reply without buf-b64')
    try:
        return base64.b64decode(chunk['buf-b64'], validate=True)
    except (binascii.Error, ValueError):
        raise errors.ProtocolError(guest, 'guest-file-read',
                                   'buf-b64 is not base64')
