#!/usr/bin/env python3
"""A private libvirtd + virtlogd for tests and demos, stopped by pid.

Why a mount namespace
---------------------
A libvirtd running as root (the QEMU "system" driver) uses fixed paths:
``/etc/libvirt`` (qemu.conf, persistent domain XML), ``/run/libvirt``
(sockets, pid files, per-domain state), ``/var/lib/libvirt`` (channel
sockets it places itself), ``/var/cache/libvirt`` (QEMU capabilities) and
``/var/log/libvirt``.  ``libvirtd --config`` moves only its own sockets;
the QEMU driver has no option or environment variable for the rest (the
``XDG_*`` variables apply to the unprivileged session daemon only).  The
options were:

* ``qemu:///embed?root=DIR``: fully private and daemon-less, but the driver
  lives inside one process, and the poller (``qga-polling``, a separate
  process) must reach the same hypervisor.  Ruled out.
* ``qemu:///session`` as an unprivileged user: private through ``XDG_*``,
  but it is not the driver Nova uses (no ``/var/lib/libvirt`` paths, other
  defaults) and needs a second user.  Ruled out.
* the system daemon with a private ``--config``: would write qemu.conf into
  ``/etc/libvirt`` and share ``/run/libvirt`` with any libvirtd of the
  machine.  Ruled out.
* **the system daemon in its own mount namespace** (chosen): ``unshare
  --mount --propagation private`` starts a shell that bind-mounts private
  directories over those five paths, starts virtlogd, then ``exec``\\ s
  libvirtd.  Both daemons (and every QEMU they start) see only the private
  directories; the host sees nothing change.  Clients outside the namespace
  reach the daemon through the socket's host path::

      qemu+unix:///system?socket=<dir>/run/libvirt-sock

  The QEMU capabilities cache is a persistent directory
  (``/var/cache/qga-monitor/libvirt`` by default) so that only the first
  start on a machine pays the ~8 s QEMU probe; libvirt checks the cache
  itself (QEMU binary, libvirt version) before trusting it.

What it still needs from the host
---------------------------------
* a ``libvirt-qemu`` user and ``libvirt-qemu`` and ``kvm`` groups:
  Debian's QEMU driver resolves these names before it reads qemu.conf and
  refuses to start without them, even with ``user = "root"``.
  :func:`ensure_qemu_user` creates the missing ones (and leaves them: other
  software may rely on them once they exist);
* empty mount-point directories ``/run/libvirt``, ``/var/lib/libvirt``,
  ``/var/cache/libvirt`` and ``/var/log/libvirt`` if they are absent.

The private qemu.conf runs QEMU as root (no ownership changes on the
images, no xattrs on the shared cached kernel).  Paths that libvirt chooses
itself (a channel ``<source mode='bind'/>`` without a path ends up under
``/var/lib/libvirt/qemu/channel/target``) are namespace paths: use
:meth:`LibvirtEnv.host_path` to find them from outside.  Paths given in the
domain XML (kernel, disks, sockets under ``/tmp``) are the same inside and
outside.

Stopping (also after a failure): every domain's QEMU is killed by the pid
in ``run/qemu/*.pid`` (libvirtd leaves running domains alone when it
exits), then libvirtd and virtlogd by pid; the private directory is
removed.  The logs are in ``<dir>/log`` until then.

Command line (runs until SIGINT/SIGTERM, prints the URI)::

    python tools/libvirt_env.py [--dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

try:
    from tools.processes import pid_alive
    from tools.processes import stop_pid
except ImportError:  # run as a script: tools/ is the script's directory
    from processes import pid_alive  # type: ignore[no-redef]
    from processes import stop_pid  # type: ignore[no-redef]

#: host path -> name of its private replacement under the env directory
MOUNTS = (
    ('/etc/libvirt', 'etc'),
    ('/run/libvirt', 'run'),
    ('/var/lib/libvirt', 'lib'),
    ('/var/log/libvirt', 'log'),
)
CACHE_MOUNT = '/var/cache/libvirt'
DEFAULT_CACHE = '/var/cache/qga-monitor/libvirt'

LIBVIRTD_CONF = '''# private libvirtd of tools/libvirt_env.py: root-only unix sockets, no TCP
listen_tls = 0
listen_tcp = 0
auth_unix_ro = "none"
auth_unix_rw = "none"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
unix_sock_admin_perms = "0700"
'''

QEMU_CONF = '''# private qemu.conf of tools/libvirt_env.py
user = "root"
group = "root"
# no xattrs remembering owners on the (shared, cached) kernel and initrd
remember_owner = 0
security_driver = "none"
stdio_handler = "logd"
'''

# Runs in the new mount namespace: $1 env dir, $2 capabilities cache,
# $3 log outputs for virtlogd, $4 for libvirtd, $5 "virtlogd" to start it
# (a restarted libvirtd reuses the running virtlogd through its socket).
LAUNCHER = r'''set -eu
base=$1
mount --bind "$base/etc" /etc/libvirt
mount --bind "$base/run" /run/libvirt
mount --bind "$base/lib" /var/lib/libvirt
mount --bind "$base/log" /var/log/libvirt
mount --bind "$2" /var/cache/libvirt
if [ "$5" = virtlogd ]; then
    LIBVIRT_LOG_OUTPUTS=$3 virtlogd -d -p /run/libvirt/virtlogd.pid
fi
LIBVIRT_LOG_OUTPUTS=$4 exec libvirtd -p /run/libvirt/libvirtd.pid \
    -f /etc/libvirt/libvirtd.conf
'''


class LibvirtEnvError(Exception):
    """The private libvirt environment could not be started."""


def ensure_qemu_user() -> list[str]:
    """Create the ``libvirt-qemu`` user and its groups when missing.

    :returns: what was created, e.g. ``['group kvm', 'user libvirt-qemu']``
    """
    created = []
    for group in ('kvm', 'libvirt-qemu'):
        try:
            grp.getgrnam(group)
        except KeyError:
            subprocess.run(['groupadd', '-r', group], check=True, capture_output=True)
            created.append('group ' + group)
    try:
        pwd.getpwnam('libvirt-qemu')
    except KeyError:
        # As Debian's libvirt-daemon-system creates it.
        subprocess.run(['useradd', '-r', '-g', 'kvm', '-G', 'libvirt-qemu', '-M',
                        '-d', '/var/lib/libvirt', '-s', '/usr/sbin/nologin',
                        'libvirt-qemu'], check=True, capture_output=True)
        created.append('user libvirt-qemu')
    return created


def _read_pid(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


class LibvirtEnv:
    """A private libvirtd/virtlogd pair (see the module docstring).

    :param directory: private directory to use (created); default a new
        ``/tmp/qga-lv-*`` (short: unix socket paths are limited to 107 bytes)
    :param cache_dir: persistent QEMU capabilities cache
    :param log_level: libvirt log level for the daemons' logs (1 debug ...
        4 errors)
    :param qemu_conf: the daemon's qemu.conf (default :data:`QEMU_CONF`;
        another one e.g. runs QEMU as ``libvirt-qemu`` with libvirt's DAC
        labelling, for the socket-permission tests)
    """

    def __init__(self, directory: str | None = None, cache_dir: str = DEFAULT_CACHE,
                 log_level: int = 3, qemu_conf: str = QEMU_CONF) -> None:
        self.directory = os.path.abspath(directory or tempfile.mkdtemp(prefix='qga-lv-',
                                                                       dir='/tmp'))
        self.cache_dir = cache_dir
        self.log_level = log_level
        self.qemu_conf = qemu_conf
        self.libvirtd: subprocess.Popen[bytes] | None = None
        self._launcher_log: Any = None
        self.virtlogd_pid: int | None = None
        #: seconds from start() until the daemon answered a connection
        self.startup_seconds: float | None = None

    @property
    def socket(self) -> str:
        """Host path of the read-write socket."""
        return os.path.join(self.directory, 'run', 'libvirt-sock')

    @property
    def uri(self) -> str:
        """URI that reaches this daemon from outside the namespace."""
        return 'qemu+unix:///system?socket=' + self.socket

    @property
    def libvirtd_pid(self) -> int | None:
        return self.libvirtd.pid if self.libvirtd is not None else None

    def host_path(self, path: str) -> str:
        """Translate a path libvirt reports (namespace view) to the host's."""
        for ns_path, name in MOUNTS:
            if path == ns_path or path.startswith(ns_path + '/'):
                return os.path.join(self.directory, name) + path[len(ns_path):]
        if path == CACHE_MOUNT or path.startswith(CACHE_MOUNT + '/'):
            return self.cache_dir + path[len(CACHE_MOUNT):]
        return path

    def log_path(self, name: str = 'libvirtd.log') -> str:
        """Host path of a daemon log, or ``qemu/<domain>.log``."""
        return os.path.join(self.directory, 'log', name)

    def log_tail(self, name: str = 'libvirtd.log', lines: int = 30) -> str:
        """Last lines of a log, for failure messages."""
        try:
            with open(self.log_path(name), errors='replace') as f:
                return ''.join(f.readlines()[-lines:])
        except OSError:
            return '(no %s)' % name

    def _prepare(self) -> None:
        for binary in ('unshare', 'libvirtd', 'virtlogd', 'mount'):
            if shutil.which(binary) is None:
                raise LibvirtEnvError('%s is not installed (tools/install_deps.sh)' % binary)
        if os.geteuid() != 0:
            raise LibvirtEnvError('a system libvirtd needs root')
        ensure_qemu_user()
        for ns_path, name in MOUNTS:
            os.makedirs(ns_path, exist_ok=True)  # the mount point, on the host
            os.makedirs(os.path.join(self.directory, name), mode=0o700, exist_ok=True)
        os.makedirs(CACHE_MOUNT, exist_ok=True)
        os.makedirs(self.cache_dir, exist_ok=True)
        with open(os.path.join(self.directory, 'etc', 'libvirtd.conf'), 'w') as f:
            f.write(LIBVIRTD_CONF)
        with open(os.path.join(self.directory, 'etc', 'qemu.conf'), 'w') as f:
            f.write(self.qemu_conf)

    def start(self, timeout: float = 60.0) -> None:
        """Start both daemons and wait until libvirtd accepts connections.

        :raises LibvirtEnvError: with the tail of the logs; everything that
            was started is stopped again
        """
        started = time.monotonic()
        self._prepare()
        self._launch(with_virtlogd=True)
        try:
            self._wait_ready(started + timeout)
        except BaseException:
            self.stop(remove=False)
            raise
        self.startup_seconds = time.monotonic() - started

    def _launch(self, with_virtlogd: bool) -> None:
        logs = ['%d:file:/var/log/libvirt/%s' % (self.log_level, name)
                for name in ('virtlogd.log', 'libvirtd.log')]
        if self._launcher_log is None:
            self._launcher_log = open(os.path.join(self.directory, 'log', 'launcher.log'),
                                      'ab')
        self.libvirtd = subprocess.Popen(
            ['unshare', '--mount', '--propagation', 'private', '--',
             'sh', '-c', LAUNCHER, 'launcher', self.directory, self.cache_dir, *logs,
             'virtlogd' if with_virtlogd else '-'],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._launcher_log,
            start_new_session=True)

    def _stop_libvirtd(self) -> None:
        if self.libvirtd is not None and self.libvirtd.poll() is None:
            self.libvirtd.terminate()
            try:
                self.libvirtd.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.libvirtd.kill()
                self.libvirtd.wait(timeout=5)

    def restart_libvirtd(self, timeout: float = 60.0) -> float:
        """Stop libvirtd by pid and start it again; domains keep running.

        What an operator's ``systemctl restart libvirtd`` does: clients lose
        their connection, the new daemon re-attaches to the running QEMUs.

        :returns: seconds until the new daemon answered
        """
        started = time.monotonic()
        self._stop_libvirtd()
        self._launch(with_virtlogd=False)
        self._wait_ready(started + timeout)
        return time.monotonic() - started

    def _wait_ready(self, deadline: float) -> None:
        virtlogd_pidfile = os.path.join(self.directory, 'run', 'virtlogd.pid')
        while time.monotonic() < deadline:
            if self.libvirtd.poll() is not None:
                raise LibvirtEnvError(
                    'libvirtd exited with rc %s\nlauncher: %s\nlibvirtd.log:\n%s'
                    % (self.libvirtd.returncode, self.log_tail('launcher.log'),
                       self.log_tail()))
            if self.virtlogd_pid is None:
                self.virtlogd_pid = _read_pid(virtlogd_pidfile)
            if self.virtlogd_pid is not None and self._accepts():
                break
            time.sleep(0.05)
        else:
            raise LibvirtEnvError('libvirtd did not open %s in time\n%s'
                                  % (self.socket, self.log_tail()))
        # The socket is up; the first API call also waits for the QEMU
        # driver (its capability probe, ~8 s without a cache).
        import libvirt
        libvirt.registerErrorHandler(lambda ctx, err: None, None)
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                conn = libvirt.open(self.uri)
                try:
                    conn.getCapabilities()
                finally:
                    conn.close()
                return
            except libvirt.libvirtError as exc:
                last = exc
                time.sleep(0.1)
        raise LibvirtEnvError('libvirtd does not answer: %s\n%s' % (last, self.log_tail()))

    def _accepts(self) -> bool:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(1.0)
        try:
            sock.connect(self.socket)
            return True
        except OSError:
            return False
        finally:
            sock.close()

    def qemu_pids(self) -> dict[str, int]:
        """Running QEMU processes of this daemon: domain name -> pid."""
        pids = {}
        qemu_run = os.path.join(self.directory, 'run', 'qemu')
        with contextlib.suppress(OSError):
            for entry in os.listdir(qemu_run):
                if entry.endswith('.pid'):
                    pid = _read_pid(os.path.join(qemu_run, entry))
                    if pid is not None and pid_alive(pid):
                        pids[entry[:-4]] = pid
        return pids

    def stop(self, remove: bool = True) -> None:
        """Stop every QEMU of this daemon, libvirtd and virtlogd, by pid.

        Safe to call more than once and after a failed :meth:`start`.

        :param remove: delete the private directory (and its logs)
        """
        for pid in self.qemu_pids().values():
            stop_pid(pid, timeout=5, expect='qemu')
        self._stop_libvirtd()
        if self.virtlogd_pid is None:
            self.virtlogd_pid = _read_pid(os.path.join(self.directory, 'run', 'virtlogd.pid'))
        if self.virtlogd_pid is not None:
            stop_pid(self.virtlogd_pid, expect='virtlogd')
        if self._launcher_log is not None:
            self._launcher_log.close()
            self._launcher_log = None
        if remove:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> LibvirtEnv:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Run a private libvirtd until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--dir', help='private directory (default: a new /tmp/qga-lv-*)')
    parser.add_argument('--cache-dir', default=DEFAULT_CACHE,
                        help='QEMU capabilities cache (default: %(default)s)')
    parser.add_argument('--keep', action='store_true',
                        help='keep the private directory (logs) after stopping')
    args = parser.parse_args(argv)
    env = LibvirtEnv(args.dir, args.cache_dir)
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(True))
    try:
        env.start()
        print('libvirtd pid %s, virtlogd pid %s, up in %.1f s\nURI: %s'
              % (env.libvirtd_pid, env.virtlogd_pid, env.startup_seconds, env.uri),
              flush=True)
        while not stop and env.libvirtd.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except LibvirtEnvError as exc:
        print('libvirt_env: %s' % exc, file=sys.stderr)
        return 1
    finally:
        env.stop(remove=not args.keep)
    return 0


if __name__ == '__main__':
    sys.exit(main())
