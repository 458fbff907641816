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

"""The process helpers of tests/fixtures/processes.py."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.fixtures import processes as procs

pytestmark = pytest.mark.functional

# A child that ignores SIGTERM: only SIGKILL stops it.
STUBBORN = ('import signal, sys, time\n'
            'signal.signal(signal.SIGTERM, signal.SIG_IGN)\n'
            'sys.stdout.write("ready\\n"); sys.stdout.flush()\n'
            'while True: time.sleep(1)\n')


def test_stop_pid_escalates_to_kill(processes):
    proc = processes.start([sys.executable, '-c', STUBBORN], stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b'ready\n'
    start = time.monotonic()
    procs.stop_pid(proc.pid, timeout=0.5)
    assert time.monotonic() - start < 5
    assert proc.wait(5) == -signal.SIGKILL
    assert not procs.pid_alive(proc.pid)


def test_stop_pid_of_a_gone_process_is_quiet(processes):
    proc = processes.start([sys.executable, '-c', 'pass'])
    proc.wait(10)
    procs.stop_pid(proc.pid)


def test_tracker_stops_the_whole_group(processes):
    # a shell whose child would outlive it if only the shell were signalled
    proc = processes.start(['sh', '-c', 'sleep 300 & echo $!; wait'],
                           stdout=subprocess.PIPE)
    child = int(proc.stdout.readline())
    assert procs.pid_alive(child)
    processes.stop_all()
    procs.wait_until(lambda: not procs.pid_alive(child), 5, 'grandchild to go')
    assert processes.procs == []


def test_children_and_session_members_are_found_in_proc(processes):
    proc = processes.start(['sh', '-c', 'sleep 300 & echo $!; wait'],
                           stdout=subprocess.PIPE)
    child = int(proc.stdout.readline())
    assert procs.child_pids(proc.pid) == [child]
    assert sorted(procs.session_pids(proc.pid)) == sorted([proc.pid, child])
    assert proc.pid in procs.child_pids(os.getpid())
    processes.stop_all()
    procs.wait_until(lambda: procs.child_pids(proc.pid) == [], 5, 'children to go')


def test_wait_for_unix_socket(short_tmpdir):
    path = os.path.join(short_tmpdir, 's.sock')
    with pytest.raises(TimeoutError, match='s.sock'):
        procs.wait_for_unix_socket(path, timeout=0.2)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    try:
        procs.wait_for_unix_socket(path, timeout=2)
    finally:
        server.close()


def test_wait_for_unix_socket_notices_a_dead_process(processes, short_tmpdir):
    proc = processes.start([sys.executable, '-c', 'raise SystemExit(3)'])
    with pytest.raises(RuntimeError, match='exited'):
        procs.wait_for_unix_socket(os.path.join(short_tmpdir, 'never.sock'), 10, proc=proc)


def test_wait_for_port():
    server = socket.socket()
    server.bind(('127.0.0.1', 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        procs.wait_for_port('127.0.0.1', port, timeout=2)
    finally:
        server.close()
    with pytest.raises(TimeoutError):
        procs.wait_for_port('127.0.0.1', port, timeout=0.2)
