"""Stop processes by pid: the one implementation every tool and test uses.

Everything the demo, the stand-in guests, the private libvirtd and the tests
start is stopped the same way: SIGTERM, a bounded wait, SIGKILL, a bounded
wait.  A zombie counts as stopped: its parent (a ``Popen``) reaps it and
keeps the exit status, which reaping here would steal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

POLL_INTERVAL = 0.02
#: how long a process may take to vanish after SIGKILL
KILL_WAIT = 5.0


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open('/proc/%d/stat' % pid) as stat:
            state = stat.read().rsplit(')', 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != 'Z'


def cmdline(pid: int) -> str:
    """The command line of ``pid`` (arguments joined by spaces), or ''."""
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            return f.read().replace(b'\0', b' ').decode('utf-8', 'replace')
    except OSError:
        return ''


def stop_pid(pid: int, timeout: float = 5.0, group: bool = False,
             expect: str = '') -> bool:
    """SIGTERM ``pid``, then SIGKILL if it is still there after ``timeout``.

    :param group: signal the process group ``pid`` leads (processes started
        with ``start_new_session=True``), so that its children go too
    :param expect: a word the command line must contain, else nothing is
        signalled (guards against a pid reused by an unrelated process)
    :returns: True if the process was running and has been stopped
    :raises RuntimeError: the pid cannot be signalled, or survived SIGKILL
    """
    if not pid_alive(pid) or (expect and expect not in cmdline(pid)):
        return False
    kill = os.killpg if group else os.kill
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, KILL_WAIT)):
        try:
            kill(pid, sig)
        except ProcessLookupError:
            return True
        except PermissionError as exc:
            raise RuntimeError('cannot signal pid %d' % pid) from exc
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return True
            time.sleep(POLL_INTERVAL)
    raise RuntimeError('pid %d survived SIGKILL' % pid)


def stop_process(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """Stop a ``Popen`` started in its own session, and reap it."""
    if proc.poll() is None:
        stop_pid(proc.pid, timeout, group=True)
    try:
        proc.wait(KILL_WAIT)
    except subprocess.TimeoutExpired:
        pass  # stop_pid saw it gone; the kernel reaps it with its parent
