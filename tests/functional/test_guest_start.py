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

"""The monitor agent's start script (guest/root/usr/local/libexec/
qga-monitor-start) with the real qemu-ga 7.2 (Debian 12) and 5.2 (Debian 11).

Both agents lack ``--allow-rpcs``, so the script computes the block list from
the agent's own ``qemu-ga -b help``.  The agent is started by the script
itself; the port is a unix socket instead of the virtio port (the extra
``-m unix-listen -p PATH`` override the script's), which is the only change
from the guest.  ``guest-info`` then lists exactly the allow-list's commands
the agent knows as enabled.

The agent is stopped as systemd stops the unit: SIGTERM, then SIGKILL after
a bound.  qemu-ga's SIGTERM handler calls g_main_loop_quit() (qga/main.c,
``quit_handler``), which takes GLib's main-context lock; a signal that
arrives while the main loop holds it deadlocks the agent.  Measured here
right after a client's ``guest-info``: qemu-ga 5.2 hung on 23 of 200
SIGTERMs, 7.2 on none of 300.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from ceilometer_qga.qga import policy
from tests.fixtures.agents import qga_standin
from tests.fixtures import processes
from tools import gen_guest_files

START = os.path.join(gen_guest_files.TREE, 'usr/local/libexec/qga-monitor-start')
ALLOW = os.path.join(gen_guest_files.TREE, gen_guest_files.ALLOW_PATH)


def _start(qemu_ga: str, workdir: str, **env: str) -> subprocess.Popen:
    sock = os.path.join(workdir, 'm.sock')
    environ = dict(os.environ, QGA=qemu_ga, ALLOW_FILE=ALLOW,
                   STATE_DIRECTORY=workdir)
    environ.update(env)
    return subprocess.Popen(['sh', START, '-m', 'unix-listen', '-p', sock],
                            env=environ, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


@pytest.mark.parametrize('agent', ['7.2', '5.2'])
def test_started_agent_enables_only_the_allow_list(agent: str, short_tmpdir: str,
                                                   request: pytest.FixtureRequest) -> None:
    qemu_ga = qga_standin.QEMU_GA if agent == '7.2' else request.getfixturevalue('qemu_ga_52')
    proc = _start(qemu_ga, short_tmpdir)
    sock = os.path.join(short_tmpdir, 'm.sock')
    try:
        deadline = time.monotonic() + 120
        while not qga_standin.answers(sock, timeout=1.0):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, 'the agent never answered'
            time.sleep(0.05)
        with qga_standin.RawClient(sock, timeout=10) as client:
            info = client.call('guest-info')
            for command in ('guest-file-write', 'guest-exec', 'guest-shutdown'):
                client.send(command, {})
                reply = client.reply()
                assert reply['error']['class'] == 'CommandNotFound' or \
                    'disabled' in reply['error']['desc'], reply
    finally:
        processes.stop_process(proc)
        proc.stdout.close()
        proc.stderr.close()
    enabled = {c['name'] for c in info['supported_commands'] if c['enabled']}
    known = set(qga_standin.known_commands(qemu_ga))
    assert enabled == (policy.READ_ONLY_COMMANDS & known) | {'guest-sync-delimited'} & known
    assert enabled <= policy.READ_ONLY_COMMANDS


def test_fails_closed_when_the_agent_cannot_list(short_tmpdir: str) -> None:
    proc = _start('/bin/false', short_tmpdir)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert 'not starting the monitor agent' in err


def test_fails_closed_on_a_list_without_commands(short_tmpdir: str) -> None:
    fake = os.path.join(short_tmpdir, 'qemu-ga')
    with open(fake, 'w') as f:
        f.write('#!/bin/sh\necho "qemu-ga: invalid option"\n')
    os.chmod(fake, 0o755)
    proc = _start(fake, short_tmpdir)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert 'did not list' in err


def test_fails_closed_without_the_allow_list(short_tmpdir: str) -> None:
    proc = _start(qga_standin.QEMU_GA, short_tmpdir,
                  ALLOW_FILE=os.path.join(short_tmpdir, 'missing'))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert 'cannot read' in err


def test_uses_allow_rpcs_where_the_agent_has_it(short_tmpdir: str) -> None:
    """An agent whose --help lists --allow-rpcs (QEMU 8.1+, qga/main.c) gets
    the allow-list, not a block list.  Stand-in script: QEMU 8.1 is not
    packaged for Debian 12; it prints the line of 8.1's usage text.
    """
    fake = os.path.join(short_tmpdir, 'qemu-ga')
    with open(fake, 'w') as f:
        f.write('#!/bin/sh\necho "  -a, --allow-rpcs  comma-separated list of RPCs to enable"\n')
    os.chmod(fake, 0o755)
    proc = _start(fake, short_tmpdir, QGA_MONITOR_DRY_RUN='1')
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    allowed = out.split('--allow-rpcs=')[1].split()[0].split(',')
    assert set(allowed) == policy.READ_ONLY_COMMANDS
    assert ' -b ' not in out
