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

"""LibvirtTransport and its connection provider, without a hypervisor.

What runs for real: libvirt's in-process ``test:///default`` driver (domain
lookup, live XML, and its genuine ``VIR_ERR_NO_SUPPORT`` answer to
``qemuAgentCommand``), the provider's thread pool and asyncio deadlines.

What is constructed rather than produced: the libvirt errors of the QEMU
driver (agent not connected, timeouts, paused domains, guest errors...).
The test driver cannot raise them and no VM runs in a unit test, so they are
real ``libvirt.libvirtError`` instances whose ``err`` tuple carries the code
and the exact message libvirt 9.0's QEMU driver reports (from
``src/qemu/qemu_agent.c`` and ``qemu_domain.c``).  ``tests/e2e/
test_vm_boot.py`` meets the same errors from a real libvirtd and VM.

A hung libvirt call is made by holding the provider's connection lock from
the test, so that the worker thread really blocks inside the provider.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid

import libvirt
from oslo_config import cfg
import pytest

from ceilometer_qga import conf as qga_conf
from ceilometer_qga import libvirt_host
from ceilometer_qga.qga import errors
from ceilometer_qga.qga import transport_libvirt

TEST_URI = 'test:///default'

# The live XML of a running domain, as libvirt 9.0's QEMU driver wrote it
# in the e2e run (channels only).
LIVE_XML = '''<domain type='qemu' id='1'>
  <name>e2e-qga</name>
  <devices>
    <channel type='unix'>
      <source mode='bind'
              path='/var/lib/libvirt/qemu/channel/target/domain-1-x/org.qemu.guest_agent.0'/>
      <target type='virtio' name='org.qemu.guest_agent.0' state='{std}'/>
      <alias name='channel0'/>
      <address type='virtio-serial' controller='0' bus='0' port='1'/>
    </channel>
    <channel type='unix'>
      <source mode='bind' path='/tmp/vms/e2e-qga.mon.sock'/>
      <target type='virtio' name='org.openstack.monitor.0' state='{mon}'/>
      <alias name='channel1'/>
      <address type='virtio-serial' controller='0' bus='0' port='2'/>
    </channel>
  </devices>
</domain>'''


def make_conf(**polling: object) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    qga_conf.register_opts(conf)
    conf([], project='qga-test', default_config_files=[], default_config_dirs=[])
    conf.set_override('uri', TEST_URI, group='libvirt_discovery')
    for name, value in polling.items():
        conf.set_override(name, value, group='qga_polling')
    return conf


def lv_error(code: int, message: str, domain: int = libvirt.VIR_FROM_QEMU) -> libvirt.libvirtError:
    """A libvirtError as the binding builds it from libvirt's last error."""
    exc = libvirt.libvirtError(message)
    exc.err = (code, domain, message, libvirt.VIR_ERR_ERROR, None, None, None, -1, -1)
    exc.args = (message,)
    return exc


def domain_xml(name: str, dom_uuid: str, channel: bool = True) -> str:
    chan = ("<channel type='unix'><source mode='bind' path='/tmp/%s.sock'/>"
            "<target type='virtio' name='org.qemu.guest_agent.0'/></channel>" % name
            if channel else '')
    return ("<domain type='test'><name>%s</name><uuid>%s</uuid>"
            "<memory unit='MiB'>64</memory><vcpu>1</vcpu>"
            "<os><type arch='x86_64'>hvm</type></os><devices>%s</devices></domain>"
            % (name, dom_uuid, chan))


@pytest.fixture
def hypervisor():
    """``start(channel=True)`` -> uuid of a running test-driver domain."""
    libvirt.registerErrorHandler(lambda ctx, err: None, None)
    conn = libvirt.open(TEST_URI)
    doms = []

    def start(channel: bool = True) -> str:
        dom_uuid = str(uuid.uuid4())
        dom = conn.defineXML(domain_xml('d-' + dom_uuid[:8], dom_uuid, channel))
        doms.append(dom)
        dom.create()
        return dom_uuid

    yield start
    for dom in doms:
        for step in (dom.destroy, dom.undefine):
            try:
                step()
            except libvirt.libvirtError:
                pass  # already gone
    conn.close()


@pytest.fixture
def provider():
    prov = libvirt_host.ConnectionProvider(TEST_URI, max_threads=2)
    yield prov
    prov.close()


# -- error mapping ---------------------------------------------------------

GUEST_ERR = "internal error: unable to execute QEMU agent command '%s': %s"


@pytest.mark.parametrize('code,message,domain_state,expected,words', [
    (libvirt.VIR_ERR_AGENT_UNRESPONSIVE,
     'Guest agent is not responding: QEMU guest agent is not connected',
     None, errors.AgentNotConnected, 'not connected'),
    (libvirt.VIR_ERR_AGENT_UNRESPONSIVE,
     'Guest agent is not responding: Guest agent disappeared while executing command',
     None, errors.AgentNotConnected, 'disappeared'),
    (libvirt.VIR_ERR_AGENT_UNRESPONSIVE,
     'Guest agent is not responding: QEMU guest agent is not available due to an error',
     None, errors.ProtocolError, 'until the guest agent reconnects'),
    (libvirt.VIR_ERR_AGENT_UNRESPONSIVE,
     'Guest agent is not responding: Guest agent not available for now',
     None, errors.AgentTimeout, 'not available for now'),
    (libvirt.VIR_ERR_OPERATION_TIMEOUT,
     'Timed out during operation: cannot acquire state change lock '
     '(held by agent=remoteDispatchDomainFSFreeze)',
     None, errors.AgentTimeout, 'cannot acquire'),
    (libvirt.VIR_ERR_AGENT_UNSYNCED,
     'Guest agent not available for now: guest agent replied with wrong id to guest-sync',
     None, errors.ProtocolError, 'wrong id'),
    (libvirt.VIR_ERR_OPERATION_INVALID,
     'Requested operation is not valid: domain is not running',
     'paused', errors.AgentNotConnected, 'domain is paused'),
    (libvirt.VIR_ERR_OPERATION_INVALID,
     'Requested operation is not valid: domain is not running',
     None, errors.AgentNotConnected, 'not running'),
    (libvirt.VIR_ERR_NO_DOMAIN,
     "Domain not found: no domain with matching uuid '4a1f...'",
     None, errors.AgentNotConnected, 'domain gone'),
    (libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED,
     'argument unsupported: QEMU guest agent is not configured',
     None, errors.AgentNotConnected, 'not configured'),
    (libvirt.VIR_ERR_NO_SUPPORT,
     'this function is not supported by the connection driver: virDomainQemuAgentCommand',
     None, errors.AgentNotConnected, 'cannot reach guest agents'),
    (libvirt.VIR_ERR_INTERNAL_ERROR,
     GUEST_ERR % ('guest-get-load', 'The command guest-get-load has not been found'),
     None, errors.CommandNotSupported, 'has not been found'),
    (libvirt.VIR_ERR_INTERNAL_ERROR,
     GUEST_ERR % ('guest-exec', 'Command guest-exec has been disabled'),
     None, errors.CommandNotSupported, 'has been disabled'),
    (libvirt.VIR_ERR_INTERNAL_ERROR,
     GUEST_ERR % ('guest-get-fsinfo', 'Command guest-get-fsinfo has been disabled: '
                  'the agent is in frozen state'),
     None, errors.AgentFrozen, 'frozen'),
    (libvirt.VIR_ERR_INTERNAL_ERROR,
     GUEST_ERR % ('guest-file-open', "failed to open file '/proc/x' (mode: 'r')"),
     None, errors.CommandFailed, 'failed to open'),
    (libvirt.VIR_ERR_INTERNAL_ERROR,
     "internal error: unable to execute QEMU agent command 'guest-ping'",
     None, errors.ProtocolError, 'guest-ping'),
    (libvirt.VIR_ERR_INTERNAL_ERROR, 'internal error: Missing agent reply object',
     None, errors.ProtocolError, 'Missing agent reply'),
    (libvirt.VIR_ERR_INVALID_ARG,
     "invalid argument: guest agent timeout '-5' is less than the minimum '-2'",
     None, errors.CommandFailed, 'minimum'),
])
def test_error_mapping(code, message, domain_state, expected, words):
    exc = transport_libvirt.error_from_libvirt(
        'g1', 'guest-x', lv_error(code, message), domain_state)
    assert type(exc) is expected
    assert words in exc.message
    assert exc.guest == 'g1' and exc.command == 'guest-x'


def test_sticky_error_and_domain_state_are_in_details():
    sticky = transport_libvirt.error_from_libvirt('g', 'c', lv_error(
        libvirt.VIR_ERR_AGENT_UNRESPONSIVE,
        'Guest agent is not responding: QEMU guest agent is not available due to an error'))
    assert sticky.details['sticky'] is True
    paused = transport_libvirt.error_from_libvirt('g', 'c', lv_error(
        libvirt.VIR_ERR_OPERATION_INVALID,
        'Requested operation is not valid: domain is not running'), 'paused')
    assert paused.details == {'libvirt_code': libvirt.VIR_ERR_OPERATION_INVALID,
                              'domain_state': 'paused'}


@pytest.mark.parametrize('code,domain,lost', [
    (libvirt.VIR_ERR_INVALID_CONN, libvirt.VIR_FROM_NONE, True),
    (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_RPC, True),
    (libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_RPC, True),
    (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_REMOTE, True),
    (libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_QEMU, False),
    (libvirt.VIR_ERR_AGENT_UNRESPONSIVE, libvirt.VIR_FROM_QEMU, False),
])
def test_disconnection_errors(code, domain, lost):
    exc = lv_error(code, 'internal error: client socket is closed', domain)
    assert libvirt_host.is_disconnect(libvirt, exc) is lost
    mapped = transport_libvirt.error_from_libvirt('g', 'c', exc)
    if lost:
        assert type(mapped) is errors.AgentNotConnected
        assert 'connection lost' in mapped.message


# -- live XML and replies --------------------------------------------------

@pytest.mark.parametrize('std,expected', [
    ('connected', 'connected'), ('disconnected', 'disconnected'), ('bogus', None)])
def test_channel_state_from_live_xml(std, expected):
    xml = LIVE_XML.format(std=std, mon='connected')
    assert transport_libvirt.channel_state(xml) == expected
    assert transport_libvirt.channel_state(xml, 'org.openstack.monitor.0') == 'connected'
    assert transport_libvirt.channel_state(xml, 'org.example.0') == \
        transport_libvirt.CHANNEL_MISSING


def test_channel_state_rejects_garbage():
    with pytest.raises(ValueError):
        transport_libvirt.channel_state('<domain><devices>')


@pytest.mark.parametrize('text,expected', [
    ('{"return": {}}', {}),
    ('{"return": [1, 2]}', [1, 2]),
    ('{"return": {"host-name": "vm"}}', {'host-name': 'vm'}),
])
def test_parse_reply(text, expected):
    assert transport_libvirt.parse_reply('g', 'c', text, 1024) == expected


@pytest.mark.parametrize('text,expected', [
    ('{"return": "' + 'x' * 2000 + '"}', errors.ProtocolError),     # over the cap
    ('{"return": "' + '\u00e9' * 600 + '"}', errors.ProtocolError),  # over, in bytes
    ('{"return": ', errors.ProtocolError),
    ('[1]', errors.ProtocolError),
    ('{"id": 1}', errors.ProtocolError),
    ('[' * 100000 + ']' * 100000, errors.ProtocolError),
    (None, errors.ProtocolError),
    ('{"error": {"class": "CommandNotFound", "desc": "Command x has been disabled"}}',
     errors.CommandNotSupported),
    ('{"error": {"class": "GenericError", "desc": "boom"}}', errors.CommandFailed),
])
def test_parse_reply_is_defensive(text, expected):
    with pytest.raises(expected):
        transport_libvirt.parse_reply('g', 'c', text, 1024)


# -- the transport against test:///default ------------------------------------

async def test_driver_without_agent_support(hypervisor, provider):
    """The test driver's real NO_SUPPORT becomes AgentNotConnected.

    Its live XML has no channel state, so the agent call is really made.
    """
    dom_uuid = hypervisor()
    transport = transport_libvirt.LibvirtTransport('g1', provider, dom_uuid, make_conf())
    with pytest.raises(errors.AgentNotConnected) as info:
        await transport.execute('guest-ping')
    assert info.value.details['libvirt_code'] == libvirt.VIR_ERR_NO_SUPPORT
    assert 'virDomainQemuAgentCommand' in info.value.message
    assert transport.channel_state is None
    assert transport.generation == 0


async def test_domain_without_channel_is_refused_before_any_call(hypervisor, provider):
    transport = transport_libvirt.LibvirtTransport(
        'g1', provider, hypervisor(channel=False), make_conf())
    with pytest.raises(errors.AgentNotConnected, match='no org.qemu.guest_agent.0 channel'):
        await transport.execute('guest-ping')
    assert transport.channel_state == transport_libvirt.CHANNEL_MISSING


async def test_live_xml_is_read_once_per_sweep(hypervisor, provider, monkeypatch):
    """The channel state is read on a sweep's first command and after a
    failure, not before every command.

    The test driver cannot run agent commands (it answers NO_SUPPORT), so
    here, and only here, ``qemuAgentCommand`` is replaced by a function
    that answers like an agent; the domain lookup, the live XML and the
    thread pool are the test driver's and the provider's own.
    """
    replies = ['{"return": {}}', '{"return": {}}',
               '{"error": {"class": "CommandNotFound", "desc": "not found"}}',
               '{"return": {}}', '{"return": {}}']

    class Agent:
        @staticmethod
        def qemuAgentCommand(dom, payload, timeout, flags):
            return replies.pop(0)
    monkeypatch.setattr(transport_libvirt, '_libvirt_qemu', lambda: Agent)
    reads = []
    real = transport_libvirt.channel_state
    monkeypatch.setattr(transport_libvirt, 'channel_state',
                        lambda xml: reads.append(1) or real(xml))
    transport = transport_libvirt.LibvirtTransport('g1', provider, hypervisor(), make_conf())
    transport.new_sweep()
    assert await transport.execute('guest-ping') == {}
    assert await transport.execute('guest-info') == {}
    with pytest.raises(errors.CommandNotSupported):  # the agent answered
        await transport.execute('guest-get-load')
    assert await transport.execute('guest-ping') == {}
    assert len(reads) == 1
    transport.new_sweep()
    assert await transport.execute('guest-ping') == {}
    assert len(reads) == 2


async def test_unknown_domain_is_gone(provider):
    transport = transport_libvirt.LibvirtTransport(
        'g1', provider, str(uuid.uuid4()), make_conf())
    with pytest.raises(errors.AgentNotConnected, match='domain gone'):
        await transport.execute('guest-ping')


async def test_forbidden_command_never_reaches_libvirt(provider):
    transport = transport_libvirt.LibvirtTransport(
        'g1', provider, str(uuid.uuid4()), make_conf())
    with pytest.raises(errors.CommandForbidden):
        await transport.execute('guest-exec', {'path': '/bin/true'})
    assert provider.busy == 0


def test_reset_replaces_only_the_current_connection(provider):
    """A broken connection handed back is replaced on next use, once."""
    first = provider.get()
    assert provider.get() is first
    provider.reset(first)
    second = provider.get()
    assert second is not first
    provider.reset(first)  # a late report about the old one changes nothing
    assert provider.get() is second


def test_each_worker_thread_has_its_own_connection(provider):
    """A call stuck in one thread's connection holds up no other thread's.

    (Measured on libvirt 9.0 in tests/e2e/test_probe_vm.py: calls on a
    shared connection stalled behind an agent call to a hung guest.)
    """
    barrier = threading.Barrier(provider.max_threads)

    def conn_of_this_thread():
        conn = provider.get()
        barrier.wait(5)  # every thread is in a call at the same time
        return conn

    futures = [provider.submit(conn_of_this_thread)
               for _ in range(provider.max_threads)]
    conns = [f.result(10) for f in futures]
    assert len({id(c) for c in conns}) == provider.max_threads
    # The same thread gets its own connection again.
    again = provider.submit(provider.get).result(10)
    assert any(again is c for c in conns)


def test_reset_by_one_thread_renews_every_thread_connection(provider):
    """The daemon went away: each thread opens a new connection next time."""
    main_conn = provider.get()
    worker_conn = provider.submit(provider.get).result(10)
    assert worker_conn is not main_conn
    provider.submit(provider.reset, worker_conn).result(10)
    renewed = provider.get()
    assert renewed is not main_conn and renewed.isAlive()
    with pytest.raises(libvirt.libvirtError):
        main_conn.getURI()  # the stale one was closed by its own thread


async def test_deadline_while_libvirt_hangs(hypervisor, provider):
    """A call stuck in its thread: AgentTimeout at the deadline, then fast.

    Holding the provider's connection lock makes the worker block exactly
    where a hung libvirt call would; releasing it lets the call finish.
    """
    dom_uuid = hypervisor()
    transport = transport_libvirt.LibvirtTransport('g1', provider, dom_uuid, make_conf())
    provider._conn_lock.acquire()
    try:
        started = time.monotonic()
        with pytest.raises(errors.AgentTimeout, match='within 0.2 s'):
            await transport.execute('guest-ping', timeout=0.2)
        assert 0.15 < time.monotonic() - started < 1.0
        started = time.monotonic()
        with pytest.raises(errors.AgentTimeout, match='not returned yet'):
            await transport.execute('guest-ping', timeout=5.0)
        assert time.monotonic() - started < 0.1
        assert provider.busy == 1
    finally:
        provider._conn_lock.release()
    deadline = time.monotonic() + 5
    while provider.busy and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert provider.busy == 0
    with pytest.raises(errors.AgentNotConnected):  # NO_SUPPORT: the normal path again
        await transport.execute('guest-ping')


async def test_exhausted_pool_fails_fast(hypervisor, provider):
    """With every thread taken, a call is refused at once, never queued."""
    transport = transport_libvirt.LibvirtTransport('g1', provider, hypervisor(), make_conf())
    release = threading.Event()
    blockers = [provider.submit(release.wait, 10) for _ in range(provider.max_threads)]
    try:
        started = time.monotonic()
        with pytest.raises(errors.AgentTimeout, match='worker threads are busy'):
            await transport.execute('guest-ping', timeout=5.0)
        assert time.monotonic() - started < 0.1
        with pytest.raises(libvirt_host.PoolExhausted):
            provider.submit(time.sleep, 0)
    finally:
        release.set()
    for blocker in blockers:
        blocker.result(timeout=5)
    assert provider.submit(lambda: 42).result(timeout=5) == 42


async def test_closed_provider(hypervisor):
    prov = libvirt_host.ConnectionProvider(TEST_URI, max_threads=1)
    transport = transport_libvirt.LibvirtTransport('g1', prov, hypervisor(), make_conf())
    prov.close()
    prov.close()  # idempotent
    with pytest.raises(errors.AgentNotConnected, match='closed'):
        await transport.execute('guest-ping')


# -- generation and channel state -------------------------------------------

def _outcome(state, reply=None, error=None):
    return transport_libvirt._Outcome(state, reply=reply, error=error)


def test_generation_counts_reconnections():
    """Drive the loop-side state step with outcomes the worker returns."""
    transport = transport_libvirt.LibvirtTransport(
        'g', libvirt_host.ConnectionProvider(TEST_URI, max_threads=1),
        str(uuid.uuid4()), make_conf())
    ok = json.dumps({'return': {}})
    refused = errors.AgentNotConnected('g', 'guest-ping', 'not opened')
    paused = errors.AgentNotConnected('g', 'guest-ping', 'domain is paused',
                                      {'domain_state': 'paused'})
    unsupported = errors.CommandNotSupported('g', 'guest-get-load', 'not found')

    with pytest.raises(errors.AgentNotConnected):
        transport._apply('guest-ping', _outcome('disconnected', error=refused))
    assert transport.generation == 0
    assert transport._apply('guest-ping', _outcome('connected', reply=ok)) == {}
    assert transport.generation == 1
    transport._apply('guest-ping', _outcome('connected', reply=ok))
    with pytest.raises(errors.CommandNotSupported):
        transport._apply('guest-get-load', _outcome('connected', error=unsupported))
    with pytest.raises(errors.AgentNotConnected):
        transport._apply('guest-ping', _outcome('connected', error=paused))
    transport._apply('guest-ping', _outcome('connected', reply=ok))
    assert transport.generation == 1  # pausing does not reconnect the agent
    with pytest.raises(errors.AgentNotConnected):
        transport._apply('guest-ping', _outcome('disconnected', error=refused))
    transport._apply('guest-ping', _outcome('connected', reply=ok))
    assert transport.generation == 2 and transport.channel_state == 'connected'
    asyncio.run(transport.close())
    transport._apply('guest-ping', _outcome('connected', reply=ok))
    assert transport.generation == 3
    transport.connection.close()
