"""``qga-probe`` against a real qemu-ga stand-in and an unresponsive socket."""

import json
import os
import socket
import subprocess
import sys

import pytest

from tools.qga_standin import StandinGuest

pytestmark = pytest.mark.functional

BIN = os.path.join(os.path.dirname(sys.executable), 'qga-probe')


def test_probe_reports_version_commands_meters_and_timings(short_tmpdir):
    guest = StandinGuest('probe', short_tmpdir,
                         extra_block=('guest-get-users',)).start()
    try:
        text = subprocess.run([BIN, '--socket', guest.socket],
                              capture_output=True, text=True, timeout=30)
        js = subprocess.run([BIN, '--socket', guest.socket, '--json',
                             '--pings', '5'],
                            capture_output=True, text=True, timeout=30)
    finally:
        guest.stop()
    assert text.returncode == 0, text.stderr
    assert 'Agent version: 7.2' in text.stdout
    assert 'guest.cpu.time' in text.stdout
    assert 'guest-ping x20: median' in text.stdout
    report = json.loads(js.stdout)
    assert report['state'] == 'ok'
    assert 'guest-get-fsinfo' in report['enabled']
    assert 'guest-get-users' in report['disabled']
    assert 'guest-exec' in report['disabled']
    meters = {m['meter']: m for m in report['meters']}
    assert meters['guest.memory.total']['via'] == 'fallback'
    assert meters['guest.memory.total']['unit'] == 'MiB'
    assert meters['guest.vcpus.online']['value'] == os.cpu_count()
    assert 'guest.users' not in meters
    assert 'guest-get-users not offered' in report['skipped']['UsersCollector']
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
        proc = subprocess.run([BIN, '--socket', path, '--timeout', '0.5'],
                              capture_output=True, text=True, timeout=30)
    finally:
        sock.close()
    assert proc.returncode == 1
    assert 'State: timeout' in proc.stdout
