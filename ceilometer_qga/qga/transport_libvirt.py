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

"""Talk to a guest agent through libvirt, on the standard channel.

libvirt owns the host end of ``org.qemu.guest_agent.0`` (one client per
channel), so the poller cannot open that socket itself; it asks libvirt to
pass each command on with ``libvirt_qemu.qemuAgentCommand(dom, json,
timeout, 0)``.  That needs a read-write connection, and libvirt logs
``Domain ... is tainted: custom-ga-command`` for the domain the first time
(a warning in libvirt's log, nothing changes for the guest).  Typed calls
such as ``virDomainGetGuestInfo`` are not used: they wait forever unless
the domain's agent timeout was changed, which is Nova's setting, not ours.

One call, step by step (all in a worker thread of the shared
:class:`~ceilometer_qga.qga.libvirt_host.ConnectionProvider`):

1. look the domain up by uuid (cached per connection);
2. read the live XML and the ``state`` of the standard channel's
   ``<target>``: ``disconnected`` means the guest has not opened its end
   (no agent running), so fail with :class:`errors.AgentNotConnected`
   without asking libvirt to talk to the agent; a domain without the
   channel fails the same way;
3. ``qemuAgentCommand`` with a whole-second timeout of at least 1 (libvirt
   also syncs with the agent first, for up to 5 s);
4. on error, ask the domain's state when libvirt says "domain is not
   running", to tell paused from shut off.

The asyncio side waits at most the caller's timeout.  A call still running
in C after that keeps its thread; until it returns, further calls to this
guest fail at once with :class:`errors.AgentTimeout`, and when the whole
pool is taken every libvirt transport fails that way (see
``ceilometer_qga/libvirt_host.py``).

libvirt errors become our typed errors (:func:`error_from_libvirt`):

=============================================  ============================
libvirt says                                   raised
=============================================  ============================
AGENT_UNRESPONSIVE "is not connected"          AgentNotConnected
AGENT_UNRESPONSIVE "disappeared"               AgentNotConnected
AGENT_UNRESPONSIVE "not available due to an    ProtocolError, details
error" (sticky until the guest reconnects)     ``sticky=True``
AGENT_UNRESPONSIVE "not available for now"     AgentTimeout
(timeout), AGENT_COMMAND_TIMEOUT,
OPERATION_TIMEOUT (agent job held)
AGENT_UNSYNCED, "Missing agent reply object"   ProtocolError
OPERATION_INVALID "domain is not running"      AgentNotConnected, details
                                               ``domain_state`` (``paused``,
                                               ``shutoff``...)
NO_DOMAIN                                      AgentNotConnected
                                               ("domain gone")
ARGUMENT_UNSUPPORTED "not configured"          AgentNotConnected
NO_SUPPORT (driver without agent support,      AgentNotConnected
e.g. ``test:///``)
"unable to execute QEMU agent command 'X':     AgentFrozen
... the agent is in frozen state"
"unable to execute QEMU agent command 'X':     CommandNotSupported
... has been disabled / has not been found"
"unable to execute QEMU agent command 'X':     CommandFailed
DESC" (any other guest error)
connection lost (:func:`is_disconnect`)        AgentNotConnected; the
                                               connection is reopened
anything else                                  CommandFailed, error_class
                                               ``libvirt:<code>``
=============================================  ============================

:attr:`generation` grows when the agent answers again after it was seen
unreachable (channel ``disconnected``, or libvirt saying not connected):
the same moment a socket transport makes a new connection.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import importlib
import json
import math
import re
from types import ModuleType
from typing import Any

from oslo_config import cfg

from ceilometer_qga.guest import STANDARD_CHANNEL
from ceilometer_qga import libvirt_host
from ceilometer_qga import libvirt_xml
from ceilometer_qga.qga import errors
from ceilometer_qga.qga import replies
from ceilometer_qga.qga import transport

#: ``<channel><target state=...>`` when the standard channel is absent
CHANNEL_MISSING = 'missing'

_AGENT_COMMAND_RE = re.compile(
    r"unable to execute QEMU agent command '[^']*'(?:: (?P<desc>.*))?\Z", re.DOTALL)
_UNSUPPORTED_DESC = ('has been disabled', 'has not been found', 'CommandNotFound',
                     'CommandDisabled')


@functools.cache
def _libvirt() -> ModuleType:
    """The binding, imported on first use (this module imports without it)."""
    return libvirt_host.import_libvirt()


@functools.cache
def _libvirt_qemu() -> ModuleType:
    """``libvirt_qemu`` (part of libvirt-python), imported on first use."""
    _libvirt()  # the clear error naming the option, if the binding is missing
    return importlib.import_module('libvirt_qemu')


#: (libvirt error codes, words the message must contain, error raised,
#: its message, extra details); the first matching row wins
_ERROR_TABLE: tuple[tuple[tuple[str, ...], str, type[errors.QgaError], str,
                          dict[str, Any]], ...] = (
    (('VIR_ERR_AGENT_UNRESPONSIVE',), 'due to an error', errors.ProtocolError,
     '%s (until the guest agent reconnects)', {'sticky': True}),
    (('VIR_ERR_AGENT_UNRESPONSIVE',), 'not available for now',
     errors.AgentTimeout, '%s', {}),
    (('VIR_ERR_AGENT_UNRESPONSIVE',), '', errors.AgentNotConnected, '%s', {}),
    (('VIR_ERR_AGENT_COMMAND_TIMEOUT', 'VIR_ERR_OPERATION_TIMEOUT'), '',
     errors.AgentTimeout, '%s', {}),
    (('VIR_ERR_AGENT_UNSYNCED',), '', errors.ProtocolError, '%s', {}),
    (('VIR_ERR_NO_DOMAIN',), '', errors.AgentNotConnected, 'domain gone: %s',
     {}),
    (('VIR_ERR_ARGUMENT_UNSUPPORTED',), '', errors.AgentNotConnected, '%s',
     {}),
    (('VIR_ERR_NO_SUPPORT',), '', errors.AgentNotConnected,
     'the libvirt driver cannot reach guest agents: %s', {}),
)
#: codes of "unable to execute QEMU agent command 'X': DESC"
_GUEST_ERROR_CODES = ('VIR_ERR_INTERNAL_ERROR', 'VIR_ERR_AGENT_COMMAND_FAILED')


def _codes(libvirt: ModuleType, names: tuple[str, ...]) -> set[int]:
    """The codes of ``names`` that this libvirt defines."""
    return {getattr(libvirt, n) for n in names if hasattr(libvirt, n)}


def channel_state(xml: str, target_name: str = STANDARD_CHANNEL) -> str | None:
    """The ``state`` of a virtio channel in a domain's live XML.

    :returns: ``connected`` / ``disconnected``; None when libvirt does not
        say (the test driver, the inactive XML); :data:`CHANNEL_MISSING`
        when the domain has no such channel
    :raises ValueError: the XML does not parse
    """
    root = libvirt_xml.parse_xml(xml)
    if root is None:
        raise ValueError('domain XML does not parse')
    for channel in libvirt_xml.parse_channels(root):
        if channel.target_name == target_name:
            return channel.state
    return CHANNEL_MISSING


def error_from_libvirt(guest: str, command: str, exc: Exception,
                       domain_state: str | None = None) -> errors.QgaError:
    """Map a libvirt error of an agent call onto our typed errors.

    See the table in the module docstring (and :data:`_ERROR_TABLE`).

    :param guest: guest label for the error
    :param command: the qga command that was being sent
    :param exc: the ``libvirt.libvirtError`` raised
    :param domain_state: the domain's state
        (:data:`ceilometer_qga.libvirt_host.STATE_WORDS`) when the caller
        asked for it after "domain is not running"
    """
    libvirt = _libvirt()
    code = exc.get_error_code() if isinstance(exc, libvirt.libvirtError) else None
    message = str(exc)
    details: dict[str, Any] = {'libvirt_code': code}
    if libvirt_host.is_disconnect(libvirt, exc):
        return errors.AgentNotConnected(
            guest, command, 'libvirt connection lost: %s' % message, details)
    if code == libvirt.VIR_ERR_OPERATION_INVALID and 'not running' in message:
        details['domain_state'] = domain_state
        return errors.AgentNotConnected(
            guest, command, 'domain is %s' % (domain_state or 'not running'), details)
    for names, words, error, template, extra in _ERROR_TABLE:
        if code in _codes(libvirt, names) and words in message:
            details.update(extra)
            return error(guest, command, template % message, details)
    match = _AGENT_COMMAND_RE.search(message)
    if match and code in _codes(libvirt, _GUEST_ERROR_CODES):
        desc = match.group('desc')
        if desc is None:
            return errors.ProtocolError(guest, command, message, details)
        if 'frozen state' in desc:
            # qga disables most commands during a freeze: "Command X has
            # been disabled: the agent is in frozen state".  Temporary, so
            # not "unsupported".
            return errors.AgentFrozen(guest, command, desc, details=details)
        if any(word in desc for word in _UNSUPPORTED_DESC):
            return errors.CommandNotSupported(guest, command, desc, details)
        return errors.CommandFailed(guest, command, desc, details=details)
    if 'agent reply' in message or 'agent response' in message:
        return errors.ProtocolError(guest, command, message, details)
    return errors.CommandFailed(guest, command, message,
                                error_class='libvirt:%s' % code, details=details)


def parse_reply(guest: str, command: str, text: Any, max_bytes: int) -> Any:
    """The ``return`` member of a reply string from ``qemuAgentCommand``.

    :raises errors.ProtocolError: over ``max_bytes``, not JSON, not an
        object, or neither ``return`` nor ``error``
    :raises errors.QgaError: the reply is a qga error object
    """
    if not isinstance(text, str):
        raise errors.ProtocolError(guest, command, 'reply is not a string: %r'
                                   % type(text).__name__)
    if len(text) > max_bytes or len(text.encode('utf-8', 'surrogatepass')) > max_bytes:
        raise errors.ProtocolError(guest, command, 'reply longer than %d bytes' % max_bytes)
    return replies.value(guest, command, replies.decode(guest, command, text))


@dataclasses.dataclass(frozen=True)
class _Outcome:
    """What one worker-thread call found; applied on the event loop."""

    channel_state: str | None
    reply: str | None = None
    error: errors.QgaError | None = None


class LibvirtTransport(transport.Transport):
    """qga through libvirt's ``qemuAgentCommand`` (module docstring).

    :param guest: label used in errors and logs (instance uuid)
    :param connection: the shared connection and thread pool
    :param domain_uuid: libvirt domain uuid (Nova's instance uuid)
    :param conf: the poller's configuration: ``[qga_polling]
        command_timeout`` is the default timeout, ``max_reply_bytes`` the
        reply cap
    """

    kind = 'libvirt'

    def __init__(self, guest: str, connection: libvirt_host.ConnectionProvider,
                 domain_uuid: str, conf: cfg.ConfigOpts) -> None:
        super().__init__(guest, conf.qga_polling.command_timeout)
        self.connection = connection
        self.domain_uuid = domain_uuid
        self.max_reply_bytes = conf.qga_polling.max_reply_bytes
        #: last ``state`` of the standard channel seen in the live XML
        self.channel_state: str | None = None
        #: channel_state is this sweep's: read once, kept while calls work
        self._state_known = False
        self._answering = False
        self._domain: tuple[Any, Any] | None = None
        self._pending: concurrent.futures.Future[_Outcome] | None = None

    async def _execute(self, command: str, arguments: dict[str, Any] | None,
                       timeout: float) -> Any:
        if self._pending is not None and not self._pending.done():
            raise errors.AgentTimeout(
                self.guest, command, 'the previous libvirt call to this guest has '
                'not returned yet (agent hung, or its agent job is held)')
        message: dict[str, Any] = {'execute': command}
        if arguments:
            message['arguments'] = arguments
        agent_timeout = max(1, math.ceil(timeout))
        try:
            future = self.connection.submit(self._call, command, json.dumps(message),
                                            agent_timeout)
        except libvirt_host.PoolExhausted as exc:
            raise errors.AgentTimeout(self.guest, command, str(exc)) from None
        except libvirt_host.ProviderClosed as exc:
            raise errors.AgentNotConnected(self.guest, command, str(exc)) from None
        self._pending = future
        try:
            outcome = await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except TimeoutError:
            self._state_known = False
            raise errors.AgentTimeout(
                self.guest, command, 'no reply through libvirt within %.3g s' % timeout
            ) from None
        return self._apply(command, outcome)

    def new_sweep(self) -> None:
        """Read the channel state again before the next command."""
        self._state_known = False

    def _apply(self, command: str, outcome: _Outcome) -> Any:
        """Update channel state and generation; return or raise the result."""
        self.channel_state = outcome.channel_state
        error = outcome.error
        # The agent answered (even with an error of its own): the channel
        # state read for this sweep still holds.  Anything else: read again.
        self._state_known = error is None or isinstance(
            error, (errors.CommandFailed, errors.CommandNotSupported))
        details = error.details if error is not None and isinstance(
            error.details, dict) else {}
        if outcome.channel_state == 'disconnected' or details.get('sticky') or (
                isinstance(error, errors.AgentNotConnected)
                and details.get('domain_state') != 'paused'):
            # A paused guest keeps its agent connection; anything else
            # here means the next answer comes from a new connection.
            self._answering = False
        elif error is None or isinstance(error, (errors.CommandFailed,
                                                 errors.CommandNotSupported)):
            # The agent answered: a new generation if it was unreachable.
            if not self._answering:
                self._answering = True
                self.generation += 1
        if error is not None:
            raise error
        return parse_reply(self.guest, command, outcome.reply, self.max_reply_bytes)

    # -- worker thread -------------------------------------------------

    def _lookup(self, conn: Any) -> Any:
        cached = self._domain
        if cached is not None and cached[0] is conn:
            return cached[1]
        dom = conn.lookupByUUIDString(self.domain_uuid)
        self._domain = (conn, dom)
        return dom

    def _call(self, command: str, payload: str, agent_timeout: int) -> _Outcome:
        """One agent call, blocking; never raises (errors are returned).

        A call that meets a lost connection first is made once more, on a
        fresh connection, reading the live XML again.
        """
        outcome, retry = self._attempt(command, payload, agent_timeout,
                                       self._state_known)
        if retry:
            outcome, _retry = self._attempt(command, payload, agent_timeout,
                                            False)
        return outcome

    def _attempt(self, command: str, payload: str, agent_timeout: int,
                 known: bool) -> tuple[_Outcome, bool]:
        """``(outcome, retry)``: retry when the connection was found lost
        before anything reached the agent, or by the first libvirt call
        (with ``known``, the live XML is not read: the agent call is it).
        """
        libvirt = _libvirt()
        conn = dom = None
        try:
            conn = self.connection.get()
            dom = self._lookup(conn)
            # The live XML once per sweep, not before every command.
            state = self.channel_state if known else channel_state(dom.XMLDesc(0))
        except libvirt.libvirtError as exc:
            lost = libvirt_host.is_disconnect(libvirt, exc)
            if lost:
                self.connection.reset(conn)
            return _Outcome(None, error=error_from_libvirt(self.guest, command, exc)), lost
        except libvirt_host.ProviderClosed as exc:
            return _Outcome(None, error=errors.AgentNotConnected(
                self.guest, command, str(exc))), False
        except ValueError as exc:
            return _Outcome(None, error=errors.ProtocolError(
                self.guest, command, 'live XML from libvirt: %s' % exc)), False
        if state == CHANNEL_MISSING:
            return _Outcome(state, error=errors.AgentNotConnected(
                self.guest, command,
                'the domain has no %s channel' % STANDARD_CHANNEL)), False
        if state == 'disconnected':
            return _Outcome(state, error=errors.AgentNotConnected(
                self.guest, command, 'the guest has not opened %s (no agent running)'
                % STANDARD_CHANNEL, {'channel_state': state})), False
        try:
            reply = _libvirt_qemu().qemuAgentCommand(dom, payload, agent_timeout, 0)
        except libvirt.libvirtError as exc:
            lost = libvirt_host.is_disconnect(libvirt, exc)
            if lost:
                self.connection.reset(conn)
            domain_state = None
            if exc.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID:
                domain_state = self._domain_state(dom)
            return _Outcome(state, error=error_from_libvirt(
                self.guest, command, exc, domain_state)), lost and known
        return _Outcome(state, reply=reply), False

    def _domain_state(self, dom: Any) -> str | None:
        try:
            code = dom.state()[0]
        except _libvirt().libvirtError:
            return None  # gone meanwhile; "not running" says enough
        return libvirt_host.STATE_WORDS.get(code, str(code))

    async def close(self) -> None:
        """Forget the cached domain; the shared connection stays open.

        The next successful call counts as a new connection (generation).
        """
        self._domain = None
        self._state_known = False
        self._answering = False
