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

"""``qga-probe`` as a process: real qemu-ga stand-ins, real libvirt discovery.

The console script runs as an operator runs it.  Guests are real qemu-ga
7.2 stand-ins on unix sockets; the "hung" agent is a socket that accepts
and never answers (what a VM's channel looks like while nothing in the
guest reads it: the ``hung`` VM of tests/e2e/test_vm_boot.py).  For
libvirt discovery the domains live in a libvirt test-driver node file
(``test:///PATH``), which the probe process opens itself; their XML is
Nova's (``tests/fixtures/nova_domain.py``) and their channels point at
the stand-in sockets.  The test driver cannot run agent commands, so the
libvirt transport is exercised in ``tests/e2e/test_probe_vm.py``.
"""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest

from ceilometer_qga import sample_factory
from tests.fixtures.agents.qga_standin import StandinGuest
from tests.fixtures.libvirt_test_driver import write_node_file
from tests.fixtures import nova_domain
from tests.fixtures.nova_domain import MONITOR
from tests.fixtures.nova_domain import STANDARD

pytestmark = pytest.mark.functional

BIN = os.path.join(os.path.dirname(sys.executable), 'qga-probe')
TIMEOUT = 1.0
PAUSED = 3  # virDomainState VIR_DOMAIN_PAUSED

WEB = '7a1e0c52-3f4b-4c8d-9e2f-000000000001'
HUNG = '7a1e0c52-3f4b-4c8d-9e2f-000000000002'
HUNG2 = '7a1e0c52-3f4b-4c8d-9e2f-000000000003'
ABSENT = '7a1e0c52-3f4b-4c8d-9e2f-000000000004'
LEGACY = '7a1e0c52-3f4b-4c8d-9e2f-000000000005'
PAUSED_ID = '7a1e0c52-3f4b-4c8d-9e2f-000000000006'
STDONLY = '7a1e0c52-3f4b-4c8d-9e2f-000000000007'
TWIN_A = '7a1e0c52-3f4b-4c8d-9e2f-00000000000a'
TWIN_B = '7a1e0c52-3f4b-4c8d-9e2f-00000000000b'


def run_probe(*args, timeout=60):
    """The console script, as a process."""
    return subprocess.run([BIN, *args], capture_output=True, text=True,
                          timeout=timeout)


@contextlib.contextmanager
def probe_node():
    """Stand-ins, a hung socket, and a node file of Nova domains on them.

    ``web-1`` answers (stand-in), ``hung-1``/``hung-2`` accept and never
    answer, ``absent-1``'s socket does not exist, ``legacy-1`` has no
    guest-agent channel at all, ``paused-1`` is paused, ``stdonly-1`` has
    only the standard channel (unreachable with transport = socket), and
    two domains share the display name ``twin``.
    """
    workdir = tempfile.mkdtemp(prefix='qgap', dir='/tmp')
    standin = StandinGuest('web', workdir).start()
    hung = socket.socket(socket.AF_UNIX)
    hung.bind(os.path.join(workdir, 'hung.sock'))
    hung.listen(16)
    hung2 = socket.socket(socket.AF_UNIX)
    hung2.bind(os.path.join(workdir, 'hung2.sock'))
    hung2.listen(16)

    def dom(uuid, name, display, channels, state=None):
        return (nova_domain.nova_domain_xml(nova_domain.Server(
            uuid=uuid, domain_name=name, display_name=display,
            channels=channels)), state)

    def mon(sock):
        return ((MONITOR, os.path.join(workdir, sock)),)
    try:
        uri = write_node_file(os.path.join(workdir, 'node.xml'), [
            dom(WEB, 'instance-00000001', 'web-1',
                ((STANDARD, os.path.join(workdir, 'web-std.sock')),
                 (MONITOR, standin.socket))),
            dom(HUNG, 'instance-00000002', 'hung-1', mon('hung.sock')),
            dom(HUNG2, 'instance-00000003', 'hung-2', mon('hung2.sock')),
            dom(ABSENT, 'instance-00000004', 'absent-1', mon('absent.sock')),
            dom(LEGACY, 'instance-00000005', 'legacy-1', ()),
            dom(PAUSED_ID, 'instance-00000006', 'paused-1',
                mon('paused.sock'), PAUSED),
            dom(STDONLY, 'instance-00000007', 'stdonly-1',
                ((STANDARD, os.path.join(workdir, 'std.sock')),)),
            dom(TWIN_A, 'instance-0000000a', 'twin', mon('twa.sock')),
            dom(TWIN_B, 'instance-0000000b', 'twin', mon('twb.sock')),
        ])
        conf = os.path.join(workdir, 'qga-polling.conf')
        with open(conf, 'w') as f:
            f.write('[DEFAULT]\nhost = probe-test\n'
                    '[qga_polling]\ndiscovery = libvirt\ntransport = socket\n'
                    'command_timeout = %s\nguest_budget = 5\n'
                    'max_concurrent_guests = 8\n'
                    '[libvirt_discovery]\nuri = %s\n' % (TIMEOUT, uri))
        yield conf
    finally:
        hung.close()
        hung2.close()
        standin.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope='module')
def node():
    """The configuration file of :func:`probe_node`'s node."""
    with probe_node() as conf:
        yield conf


def test_probe_reports_version_commands_meters_and_timings(short_tmpdir):
    guest = StandinGuest('probe', short_tmpdir,
                         extra_block=('guest-get-users',)).start()
    try:
        text = run_probe('--socket', guest.socket)
        js = run_probe('--socket', guest.socket, '--json', '--pings', '5')
    finally:
        guest.stop()
    assert text.returncode == 0, text.stderr
    assert 'Agent version: 7.2' in text.stdout
    assert 'Channel: %s, socket %s' % (MONITOR, guest.socket) in text.stdout
    assert 'guest.cpu.time' in text.stdout
    assert 'guest-ping x20: median' in text.stdout
    report = json.loads(js.stdout)
    assert report['state'] == 'ok'
    assert report['transport'] == 'socket'
    assert 'guest-get-fsinfo' in report['enabled']
    assert 'guest-get-users' in report['disabled']
    assert 'guest-exec' in report['disabled']
    meters = {m['meter']: m for m in report['meters']}
    assert meters['guest.memory.total']['via'] == 'fallback'
    assert meters['guest.memory.total']['unit'] == 'MiB'
    assert meters['guest.vcpus.online']['value'] == os.cpu_count()
    assert 'guest.users' not in meters
    assert 'guest-get-users not offered' in report['skipped']['users']
    assert report['ping_ms']['count'] == 5
    commands = [c['command'] for c in report['commands']]
    assert commands[:2] == ['guest-ping', 'guest-info']
    assert all(c['ms'] >= 0 for c in report['commands'])


def test_probe_of_a_silent_socket_fails_fast(short_tmpdir):
    path = os.path.join(short_tmpdir, 'silent.sock')
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(path)
    sock.listen(1)
    try:
        proc = run_probe('--socket', path, '--timeout', '0.5')
    finally:
        sock.close()
    assert proc.returncode == 1
    assert 'State: timeout' in proc.stdout


@pytest.mark.parametrize('key', [WEB, WEB.upper(), 'web-1',
                                 'instance-00000001'])
def test_instance_found_by_uuid_display_name_or_domain_name(node, key):
    proc = run_probe('--config-file', node, key, '--json', '--pings', '2')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report['instance'] == {'instance_id': WEB,
                                  'name': 'instance-00000001',
                                  'display_name': 'web-1'}
    assert report['state'] == 'ok'
    assert (report['transport'], report['channel']) == ('socket', MONITOR)
    assert report['agent_version'].startswith('7.2')
    # JSON keeps the escaped resource id and the human name side by side.
    root = [m for m in report['meters']
            if m['meter'] == 'guest.filesystem.used' and m['item'] == '/']
    assert len(root) == 1
    assert root[0]['resource_id'] == sample_factory.resource_id(WEB, '/')
    assert root[0]['resource_id'] == WEB + '-_2F'
    assert report['meter_counts']['native'] > 0
    assert report['meter_counts']['fallback'] > 0


def test_instance_table_names_mountpoints_not_escaped_ids(node):
    proc = run_probe('--config-file', node, 'web-1', '--pings', '1')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == 'Instance: %s  instance-00000001  (web-1)' % WEB
    assert lines[1].startswith('Channel: %s, socket ' % MONITOR)
    assert '_2F' not in proc.stdout
    fs = [line.split() for line in lines
          if line.startswith('guest.filesystem.used ')]
    assert ['/'] in [row[1:2] for row in fs], fs


def test_ambiguous_name_lists_the_instances_and_exits_2(node):
    proc = run_probe('--config-file', node, 'twin')
    assert proc.returncode == 2
    assert '2 instances match' in proc.stderr
    assert TWIN_A in proc.stderr and TWIN_B in proc.stderr
    assert proc.stdout == ''


def test_unknown_instance_exits_2_naming_where_it_looked(node):
    proc = run_probe('--config-file', node, 'no-such-server')
    assert proc.returncode == 2
    assert "no instance 'no-such-server'" in proc.stderr
    assert 'libvirt discovery of test:///' in proc.stderr


def test_instance_states_that_are_not_ok(node):
    hung = run_probe('--config-file', node, 'hung-1', '--json')
    assert hung.returncode == 1
    assert json.loads(hung.stdout)['state'] == 'timeout'
    legacy = run_probe('--config-file', node, 'legacy-1')
    assert legacy.returncode == 1
    assert 'Channel: none (no %s channel' % MONITOR in legacy.stdout
    assert 'State: legacy (the domain has no guest-agent channel' in (
        legacy.stdout)
    paused = json.loads(run_probe('--config-file', node, PAUSED_ID,
                                  '--json').stdout)
    assert (paused['state'], paused['error']) == ('paused',
                                                  'domain is paused')


def test_all_lists_every_guest_unhealthy_first_in_one_bounded_sweep(node):
    proc = run_probe('--config-file', node, '--all', '--json')
    assert proc.returncode == 1, proc.stdout + proc.stderr
    found = json.loads(proc.stdout)
    rows = found['guests']
    states = {r['display_name']: r['state'] for r in rows}
    assert states == {
        'web-1': 'ok', 'hung-1': 'timeout', 'hung-2': 'timeout',
        'absent-1': 'not_connected', 'legacy-1': 'legacy',
        'paused-1': 'paused', 'stdonly-1': 'no_channel',
        'twin': 'not_connected'}, rows
    # Unhealthy first, then legacy, then ok.
    order = [r['state'] for r in rows]
    assert order[-2:] == ['legacy', 'ok']
    web = rows[-1]
    assert web['instance_id'] == WEB and web['name'] == 'instance-00000001'
    assert web['agent_version'].startswith('7.2')
    assert web['latency_ms'] > 0
    assert (web['transport'], web['channel']) == ('socket', MONITOR)
    assert web['meters']['native'] > 0 and web['meters']['fallback'] > 0
    assert rows[-2]['transport'] is None
    # Two hung agents polled in parallel cost the timeout once.
    assert TIMEOUT <= found['sweep_s'] < 2 * TIMEOUT, found


def test_all_table(node):
    proc = run_probe('--config-file', node, '--all')
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ['instance', 'name', 'domain', 'state',
                                'version', 'ping', 'ms', 'transport',
                                'native/fallback']
    rows = [line.split() for line in lines[2:11]]
    assert rows[-1][:4] == [WEB, 'web-1', 'instance-00000001', 'ok']
    assert rows[-1][6:8] == ['socket', '(%s)' % MONITOR]
    assert rows[-2][:4] == [LEGACY, 'legacy-1', 'instance-00000005',
                            'legacy']
    assert lines[11].startswith('9 guests, 1 ok, swept in ')
    problems = dict(line.split(': ', 1) for line in lines[13:])
    assert problems['hung-1'].endswith('no reply within the timeout')
    assert problems['paused-1'] == 'domain is paused'
    assert problems['legacy-1'].startswith('the domain has no guest-agent')
    assert 'web-1' not in problems


def test_instance_from_static_discovery(short_tmpdir):
    guest = StandinGuest('static', short_tmpdir).start()
    conf = os.path.join(short_tmpdir, 'static.conf')
    with open(conf, 'w') as f:
        f.write('[qga_polling]\ndiscovery = static\n'
                '[static_discovery]\nguests = %s=%s\n' % (WEB, guest.socket))
    try:
        one = run_probe('--config-file', conf, WEB, '--json', '--pings', '1')
        every = run_probe('--config-file', conf, '--all', '--json')
    finally:
        guest.stop()
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)['state'] == 'ok'
    assert every.returncode == 0, every.stderr
    assert [r['state'] for r in json.loads(every.stdout)['guests']] == ['ok']


def test_bad_usage_or_configuration_exits_2(node, short_tmpdir):
    both = run_probe('--config-file', node, 'web-1', '--all')
    assert both.returncode == 2
    assert 'exactly one of INSTANCE, --all or --socket' in both.stderr
    conf = os.path.join(short_tmpdir, 'bad.conf')
    with open(conf, 'w') as f:
        f.write('[qga_polling]\ndiscovery = nosuch\n')
    bad = run_probe('--config-file', conf, '--all')
    assert bad.returncode == 2
    assert "[qga_polling] discovery = 'nosuch'" in bad.stderr
    unreachable = os.path.join(short_tmpdir, 'down.conf')
    with open(unreachable, 'w') as f:
        f.write('[libvirt_discovery]\nuri = qemu+unix:///system?socket=%s\n'
                % os.path.join(short_tmpdir, 'nobody.sock'))
    down = run_probe('--config-file', unreachable, 'web-1')
    assert down.returncode == 2
    assert 'discovery failed' in down.stderr
    assert '[libvirt_discovery] uri' in down.stderr


def test_frozen_agent_is_reported_frozen(fake_agent):
    """The fake answers as qemu-ga 7.2 does during a Nova quiesce."""
    agent = fake_agent('frozen')
    proc = run_probe('--socket', agent.socket, '--json', '--pings', '1')
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report['state'] == 'frozen'
    assert 'frozen' in report['skipped']['filesystem']
