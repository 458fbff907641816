#!/usr/bin/env python3
"""Build the kernel, initramfs and data disk of the end-to-end test guest.

Everything comes from Debian packages, nothing else is downloaded:

* the kernel: the ``linux-image-6.1.0-*-amd64`` package that
  ``linux-image-amd64`` depends on, fetched with ``apt-get download``
  (about 70 MB; reused from ``/var/cache/apt/archives`` or from our own
  cache when already there) and unpacked;
* ``busybox`` from the installed ``busybox-static`` (downloaded when it is
  not installed);
* ``qemu-ga`` and every library ``ldd`` lists for it, from the installed
  ``qemu-guest-agent``.

The guest is an initramfs only (no root disk).  Its ``/init`` mounts
proc/sys/dev/run, loads the virtio and ext4 modules (their order is worked
out from each module's ``depends=`` field: the package ships no
``modules.dep``), mounts the ext4 data disk ``/dev/vda`` on ``/mnt``,
creates the ``/dev/virtio-ports/<name>`` links that udev would make (there
is no udev), brings every network interface up, and starts two agents:

* ``qemu-ga`` on ``org.qemu.guest_agent.0``, unrestricted, as a stock guest
  image runs it (libvirt and Nova talk to this one);
* a second ``qemu-ga`` on ``org.openstack.monitor.0`` (when the domain has
  that channel) with every command blocked that is not on the poller's
  read-only allow-list (:data:`ceilometer_qga.qga.policy.READ_ONLY_COMMANDS`).

Each agent has its own state directory (``-t``) and runs under a restart
loop.  The kernel command line chooses the behaviour, so one initramfs
serves every test:

=========  =======================================================
variant    kernel command line
=========  =======================================================
qga        agents start at once
noagent    ``qga_mode=none``: no agent ever starts, the ports stay closed
late       ``qga_delay=N``: agents start N seconds after init
hung       ``qga_mode=hung``: the ports are opened (libvirt shows the
           channel ``connected``) but nothing ever answers
=========  =======================================================

The init writes ``QGA-GUEST ...`` lines on the serial console, among them
``QGA-GUEST statfs /mnt blocks=... bfree=... bavail=... bsize=...`` (what
the guest's own ``df`` sees) and ``QGA-GUEST agents-started``.

The data disk is a 64 MiB ext4 image with about 3 MiB of files, so its
used bytes are not trivial.  Tests copy it per domain (it is written to).

The kernel is stored uncompressed (``vmlinux``, booted through its PVH entry
point): under TCG the guest's own xz decompression of the bzImage took
about half of the boot.

Output: ``<cache>/<key>/{vmlinux,initrd.img,data.img,manifest.json}``, where
the key hashes this file, the kernel package and version, and the
qemu-guest-agent and busybox-static versions.  A second run with the same
inputs returns the existing directory (well under a second: the kernel
package name is looked up with ``apt-cache`` only when the apt lists
changed).  The cache is ``--cache-dir``, else ``$QGA_GUEST_IMAGE_CACHE``,
else ``$XDG_CACHE_HOME/qga-monitor/guest-image``, else
``/var/cache/qga-monitor/guest-image``.  Nothing is written into the
repository.

Command line::

    python tools/build_guest_image.py [--cache-dir DIR] [--force] [--json]

Library::

    image = build_guest_image.build()
    image.kernel, image.initrd, image.data_disk, image.cmdline('late', delay=15)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
import contextlib
import dataclasses
import fcntl
import glob
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from typing import Any

try:
    from ceilometer_qga.qga import policy
except ImportError:  # run from a checkout where the package is not installed
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from ceilometer_qga.qga import policy

KERNEL_METAPACKAGE = 'linux-image-amd64'
QEMU_GA = '/usr/sbin/qemu-ga'
STANDARD_CHANNEL = 'org.qemu.guest_agent.0'
MONITOR_CHANNEL = 'org.openstack.monitor.0'

#: modules the guest needs; their dependencies are added and ordered
ROOT_MODULES = ('virtio_pci', 'virtio_console', 'virtio_blk', 'virtio_net', 'ext4')

#: kernel command line shared by every variant
BASE_CMDLINE = 'console=ttyS0 quiet panic=-1'

VARIANTS = ('qga', 'noagent', 'late', 'hung')

DATA_DISK_MIB = 64
DATA_PAYLOAD_BYTES = 3 * 1024 * 1024

INIT_SCRIPT = r'''#!/bin/sh
# PID 1 of the qga-monitor e2e guest (written by tools/build_guest_image.py).
# Kernel command line: qga_mode=normal|none|hung, qga_delay=SECONDS.
PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /tmp /run/qga-std /run/qga-mon

log() { echo "QGA-GUEST $* uptime=$(cut -d' ' -f1 /proc/uptime)" > /dev/console; }

mode=normal
delay=0
read -r cmdline < /proc/cmdline
for arg in $cmdline; do
    case "$arg" in
        qga_mode=*) mode=${arg#qga_mode=} ;;
        qga_delay=*) delay=${arg#qga_delay=} ;;
    esac
done
hostname qga-guest

while read -r mod; do
    insmod "/lib/modules/$mod.ko" || log "insmod $mod failed"
done < /lib/modules/load-order
log "modules-loaded"

# No udev: the kernel makes /dev/vportNpM only.  Ports appear a little
# after virtio_console loads (the host announces them), so whoever needs a
# port waits for it by name, with a bound, and links every named port.
link_ports() {
    mkdir -p /dev/virtio-ports
    for p in /sys/class/virtio-ports/*; do
        if [ -e "$p/name" ] && [ -e "/dev/$(basename "$p")" ]; then
            name=$(cat "$p/name")
            if [ -n "$name" ] && [ ! -e "/dev/virtio-ports/$name" ]; then
                ln -sfn "../$(basename "$p")" "/dev/virtio-ports/$name"
            fi
        fi
    done
}

wait_port() {  # wait_port NAME: up to 10 s; 0 when /dev/virtio-ports/NAME exists
    i=0
    while [ $i -lt 100 ]; do
        link_ports
        [ -e "/dev/virtio-ports/$1" ] && return 0
        i=$((i + 1))
        sleep 0.1
    done
    log "no port $1"
    return 1
}

# The data disk: virtio block devices have virtio device id 0x0002.
if grep -qx 0x0002 /sys/bus/virtio/devices/*/device 2>/dev/null; then
    i=0
    while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do i=$((i + 1)); sleep 0.1; done
    if mount -t ext4 /dev/vda /mnt; then
        log "statfs /mnt $(stat -f -c 'blocks=%b bfree=%f bavail=%a bsize=%S' /mnt)"
    else
        log "mount /dev/vda failed"
    fi
fi

for dev in /sys/class/net/*; do
    ip link set "$(basename "$dev")" up
done
log "init-done"

agent() {  # agent PORT-NAME STATEDIR [BLOCK-LIST], in the background
    (
        wait_port "$1" || exit 0
        log "agent on $1 starting"
        while :; do
            if [ -n "$3" ]; then
                /usr/sbin/qemu-ga -m virtio-serial -p "/dev/virtio-ports/$1" -t "$2" -b "$3"
            else
                /usr/sbin/qemu-ga -m virtio-serial -p "/dev/virtio-ports/$1" -t "$2"
            fi
            log "agent on $1 exited rc=$?"
            sleep 1
        done
    ) &
}

hold_open() {  # hold_open PORT-NAME: the port looks connected, nobody answers
    (
        wait_port "$1" || exit 0
        exec 3<>"/dev/virtio-ports/$1"
        log "holding $1 open"
        while :; do sleep 3600; done
    ) &
}

case "$mode" in
    none)
        log "agents-disabled"
        ;;
    hung)
        hold_open @STANDARD@
        hold_open @MONITOR@
        log "agents-hung"
        ;;
    *)
        [ "$delay" -gt 0 ] 2>/dev/null && sleep "$delay"
        agent @MONITOR@ /run/qga-mon "$(cat /etc/qga-monitor-blocked)"
        agent @STANDARD@ /run/qga-std ""
        log "agents-started"
        ;;
esac

while :; do sleep 3600; done
'''.replace('@STANDARD@', STANDARD_CHANNEL).replace('@MONITOR@', MONITOR_CHANNEL)

OS_RELEASE = '''PRETTY_NAME="qga-monitor e2e guest (busybox + qemu-ga)"
NAME="qga-e2e"
ID=qga-e2e
VERSION_ID="1"
VERSION="1"
'''


class BuildError(Exception):
    """The guest image cannot be built; the message says why."""


@dataclasses.dataclass(frozen=True)
class GuestImage:
    """A built guest image (all paths absolute).

    :ivar directory: the cache entry holding the files below
    :ivar kernel: uncompressed kernel ELF (PVH boot) for ``<os><kernel>``
    :ivar initrd: gzip'ed cpio to pass as ``<os><initrd>``
    :ivar data_disk: pristine raw ext4 image; copy it before use
    :ivar manifest: what went in (versions, modules, block list)
    """

    directory: str
    kernel: str
    initrd: str
    data_disk: str
    manifest: dict[str, Any]

    def cmdline(self, variant: str = 'qga', delay: int = 20) -> str:
        """Kernel command line for one variant (see the module docstring).

        :param variant: one of :data:`VARIANTS`
        :param delay: seconds before the agents start, for ``late``
        """
        if variant == 'qga':
            return BASE_CMDLINE
        if variant == 'noagent':
            return BASE_CMDLINE + ' qga_mode=none'
        if variant == 'late':
            return '%s qga_delay=%d' % (BASE_CMDLINE, delay)
        if variant == 'hung':
            return BASE_CMDLINE + ' qga_mode=hung'
        raise ValueError('unknown variant %r; choose from %s' % (variant, VARIANTS))


def default_cache_dir() -> str:
    """Where images go when no directory is given (module docstring)."""
    explicit = os.environ.get('QGA_GUEST_IMAGE_CACHE')
    if explicit:
        return explicit
    xdg = os.environ.get('XDG_CACHE_HOME')
    if xdg:
        return os.path.join(xdg, 'qga-monitor', 'guest-image')
    return '/var/cache/qga-monitor/guest-image'


def _run(argv: list[str], **kwargs: Any) -> str:
    """Run a command, return its stdout; fail with its stderr."""
    try:
        proc = subprocess.run(argv, check=True, capture_output=True, text=True,
                              timeout=600, **kwargs)
    except FileNotFoundError as exc:
        raise BuildError('%s is not installed (tools/install_deps.sh installs it)'
                         % argv[0]) from exc
    except subprocess.CalledProcessError as exc:
        raise BuildError('%s failed (rc %s): %s' % (
            ' '.join(argv), exc.returncode, exc.stderr.strip()[-2000:])) from exc
    return proc.stdout


def _dpkg_version(package: str) -> str | None:
    """Installed version of a package, or None when it is not installed."""
    proc = subprocess.run(['dpkg-query', '-W', '-f', '${db:Status-Status} ${Version}',
                           package], capture_output=True, text=True)
    status, _, version = proc.stdout.partition(' ')
    return version if proc.returncode == 0 and status == 'installed' else None


def _apt_lists_fingerprint() -> str:
    """Changes whenever ``apt-get update`` brings new package lists."""
    digest = hashlib.sha256()
    for path in sorted(glob.glob('/var/lib/apt/lists/*')):
        with contextlib.suppress(OSError):
            st = os.stat(path)
            digest.update(('%s %d %d\n' % (path, st.st_size, st.st_mtime_ns)).encode())
    return digest.hexdigest()


def resolve_kernel_package(cache_dir: str) -> tuple[str, str]:
    """Return (package, version) of the kernel ``linux-image-amd64`` wants.

    ``apt-cache`` takes about a second here (no binary package cache), so
    the answer is remembered in ``cache_dir`` until the apt lists change.
    """
    memo = os.path.join(cache_dir, 'kernel-package.json')
    fingerprint = _apt_lists_fingerprint()
    with contextlib.suppress(OSError, ValueError, KeyError):
        with open(memo) as f:
            saved = json.load(f)
        if saved['lists'] == fingerprint:
            return saved['package'], saved['version']
    out = _run(['apt-cache', 'show', '--no-all-versions', KERNEL_METAPACKAGE])
    match = re.search(r'^Depends:.*?\b(linux-image-6\.1\.[^\s,]+)\s*\(=\s*([^)\s]+)\)',
                      out, re.MULTILINE)
    if not match:
        raise BuildError('cannot find the kernel package in `apt-cache show %s`: %r'
                         % (KERNEL_METAPACKAGE, out[:500]))
    package, version = match.group(1), match.group(2)
    os.makedirs(cache_dir, exist_ok=True)
    tmp = memo + '.%d' % os.getpid()
    with open(tmp, 'w') as f:
        json.dump({'lists': fingerprint, 'package': package, 'version': version}, f)
    os.replace(tmp, memo)
    return package, version


def monitor_block_list() -> list[str]:
    """Commands the monitor-channel agent refuses: all but the read-only ones."""
    out = _run([QEMU_GA, '-b', 'help'])
    known = [line.strip() for line in out.splitlines() if line.strip()]
    if 'guest-ping' not in known:
        raise BuildError('unexpected output of qemu-ga -b help: %r' % out[:200])
    return sorted(c for c in known if c not in policy.READ_ONLY_COMMANDS)


def cache_key(kernel: tuple[str, str], qemu_ga_version: str,
              busybox_version: str, blocked: Iterable[str]) -> str:
    """Hash of every input of the build (this file included)."""
    digest = hashlib.sha256()
    with open(os.path.abspath(__file__), 'rb') as f:
        digest.update(f.read())
    for part in (*kernel, qemu_ga_version, busybox_version, ','.join(blocked)):
        digest.update(b'\0' + part.encode())
    return digest.hexdigest()[:20]


def _fetch_deb(package: str, version: str, cache_dir: str) -> str:
    """Path of ``package_version_amd64.deb``, downloading it if needed."""
    debs = os.path.join(cache_dir, 'debs')
    os.makedirs(debs, exist_ok=True)
    quoted = version.replace(':', '%3a')
    name = '%s_%s_amd64.deb' % (package, quoted)
    for candidate in (os.path.join(debs, name),
                      os.path.join('/var/cache/apt/archives', name)):
        if os.path.isfile(candidate):
            return candidate
    with tempfile.TemporaryDirectory(dir=debs) as tmp:
        # root downloads directly: the _apt sandbox user cannot write tmp
        _run(['apt-get', 'download', '-q', '-o', 'APT::Sandbox::User=root',
              '%s=%s' % (package, version)], cwd=tmp)
        found = glob.glob(os.path.join(tmp, '%s_*.deb' % package))
        if len(found) != 1:
            raise BuildError('apt-get download %s=%s left %r' % (package, version, found))
        os.replace(found[0], os.path.join(debs, name))
    # Keep only the newest download of each package.
    for old in glob.glob(os.path.join(debs, '%s_*.deb' % package)):
        if os.path.basename(old) != name:
            os.unlink(old)
    return os.path.join(debs, name)


def _busybox_binary(cache_dir: str, work: str) -> str:
    """The static busybox: installed, or unpacked from a downloaded package."""
    if _dpkg_version('busybox-static') and os.path.isfile('/bin/busybox'):
        return '/bin/busybox'
    out = _run(['apt-cache', 'show', '--no-all-versions', 'busybox-static'])
    version = re.search(r'^Version:\s*(\S+)', out, re.MULTILINE)
    if not version:
        raise BuildError('busybox-static is not installed and apt does not know it')
    deb = _fetch_deb('busybox-static', version.group(1), cache_dir)
    dest = os.path.join(work, 'busybox-pkg')
    _run(['dpkg-deb', '-x', deb, dest])
    return os.path.join(dest, 'bin', 'busybox')


def _modinfo(path: str) -> dict[str, list[str]]:
    """``depends``, ``softdep`` and ``alias`` entries of a ``.ko`` file.

    Read from the ELF ``.modinfo`` section (``key=value\\0`` strings): the
    kernel package has no ``modules.dep`` and the host may have no
    ``modinfo``.
    """
    with open(path, 'rb') as f:
        data = f.read()
    if data[:5] != b'\x7fELF\x02':
        raise BuildError('%s is not a 64-bit ELF module' % path)
    shoff, = struct.unpack_from('<Q', data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from('<HHH', data, 0x3A)

    def section(index: int) -> tuple[int, int, int]:
        name, _, _, _, offset, size = struct.unpack_from('<IIQQQQ', data,
                                                         shoff + index * shentsize)
        return name, offset, size

    _, strtab, _ = section(shstrndx)
    info: dict[str, list[str]] = {'depends': [], 'softdep': [], 'alias': []}
    for index in range(shnum):
        name, offset, size = section(index)
        if data[strtab + name:strtab + name + 9] != b'.modinfo\0':
            continue
        for entry in data[offset:offset + size].split(b'\0'):
            key, sep, value = entry.decode('ascii', 'replace').partition('=')
            if sep and key in info:
                info[key].append(value)
    return info


def _module_name(path: str) -> str:
    return os.path.basename(path).split('.ko')[0].replace('-', '_')


def resolve_modules(moddir: str, roots: Iterable[str]) -> list[str]:
    """Paths of the modules to insert, dependencies first.

    :param moddir: ``lib/modules/<version>`` of the unpacked kernel
    :param roots: module names the guest needs; those built into the kernel
        (``modules.builtin``) are skipped, with their dependencies
    """
    files = {}
    for path in glob.glob(os.path.join(moddir, 'kernel', '**', '*.ko*'), recursive=True):
        files[_module_name(path)] = path
    builtin = set()
    with contextlib.suppress(OSError):
        with open(os.path.join(moddir, 'modules.builtin')) as f:
            builtin = {_module_name(line.strip()) for line in f if line.strip()}
    info_cache: dict[str, dict[str, list[str]]] = {}

    def info(name: str) -> dict[str, list[str]]:
        if name not in info_cache:
            info_cache[name] = _modinfo(_plain_module(files[name]))
        return info_cache[name]

    def provider(name: str) -> str | None:
        # A softdep names a module or an alias ("crypto-crc32c" is provided
        # by crc32c_generic and crc32c_intel).  Prefer the generic C code:
        # TCG's default qemu64 CPU lacks SSE4.2.
        plain = name.replace('-', '_')
        if plain in files or plain in builtin:
            return plain
        stem = plain.removeprefix('crypto_')
        found = sorted((m for m in files if m.startswith(stem) and name in info(m)['alias']),
                       key=lambda m: (not m.endswith('_generic'), m))
        return found[0] if found else None

    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order or name in builtin:
            return
        if name not in files:
            raise BuildError('kernel module %s is neither built in nor in %s' % (name, moddir))
        if name in visiting:
            raise BuildError('module dependency loop through %s' % name)
        visiting.add(name)
        mod = info(name)
        deps = [d for dep in mod['depends'] for d in dep.split(',') if d]
        for soft in mod['softdep']:
            pre = soft.split('post:')[0]
            deps.extend(w for w in pre.replace('pre:', ' ').split() if w)
        for dep in deps:
            real = provider(dep)
            if real is not None:
                visit(real)
        visiting.discard(name)
        order.append(name)

    for root in roots:
        visit(root)
    return [files[name] for name in order]


def _plain_module(path: str) -> str:
    """Decompress ``.ko.xz`` next to itself (busybox insmod wants plain ELF)."""
    if path.endswith('.ko'):
        return path
    if path.endswith('.ko.xz'):
        plain = path[:-3]
        if not os.path.exists(plain):
            with lzma.open(path) as src, open(plain, 'wb') as dst:
                shutil.copyfileobj(src, dst)
        return plain
    raise BuildError('cannot read compressed module %s' % path)


def extract_vmlinux(bzimage: str, out: str) -> None:
    """Write the uncompressed kernel ELF inside a bzImage to ``out``.

    QEMU boots such an ELF through its PVH entry point (``CONFIG_PVH=y`` in
    Debian's kernel) and so skips the in-guest decompression of the xz
    payload, which under TCG takes as long as the rest of the boot.
    """
    with open(bzimage, 'rb') as f:
        data = f.read()
    start = data.find(b'\xfd7zXZ\x00')
    if start < 0:
        raise BuildError('no xz payload in %s' % bzimage)
    try:
        elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[start:])
    except lzma.LZMAError as exc:
        raise BuildError('cannot unpack the kernel in %s: %s' % (bzimage, exc)) from exc
    if elf[:4] != b'\x7fELF' or b'Xen\x00' not in elf:
        raise BuildError('the kernel in %s is not an ELF with a PVH note' % bzimage)
    with open(out, 'wb') as f:
        f.write(elf)


def _copy_qemu_ga(root: str) -> None:
    """qemu-ga and every shared library it loads, at the same paths."""
    os.makedirs(os.path.join(root, 'usr/sbin'), exist_ok=True)
    shutil.copy2(QEMU_GA, os.path.join(root, 'usr/sbin/qemu-ga'))
    for lib in re.findall(r'(/\S+)\s+\(0x', _run(['ldd', QEMU_GA])):
        dest = os.path.join(root, lib.lstrip('/'))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy2(os.path.realpath(lib), dest)


def _write(path: str, text: str, mode: int = 0o644) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)
    os.chmod(path, mode)


def _make_initramfs(root: str, busybox: str, modules: list[str], blocked: list[str],
                    out: str) -> None:
    for sub in ('bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'run',
                'tmp', 'mnt', 'var', 'lib/modules'):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    os.symlink('../run', os.path.join(root, 'var/run'))
    shutil.copy2(busybox, os.path.join(root, 'bin/busybox'))
    os.symlink('busybox', os.path.join(root, 'bin/sh'))
    _copy_qemu_ga(root)
    names = []
    for path in modules:
        name = _module_name(path)
        shutil.copy2(_plain_module(path), os.path.join(root, 'lib/modules', name + '.ko'))
        names.append(name)
    _write(os.path.join(root, 'lib/modules/load-order'), '\n'.join(names) + '\n')
    _write(os.path.join(root, 'etc/qga-monitor-blocked'), ','.join(blocked) + '\n')
    _write(os.path.join(root, 'etc/os-release'), OS_RELEASE)
    _write(os.path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n')
    _write(os.path.join(root, 'etc/group'), 'root:x:0:\n')
    _write(os.path.join(root, 'etc/hostname'), 'qga-guest\n')
    _write(os.path.join(root, 'init'), INIT_SCRIPT, 0o755)
    # busybox cpio: the cpio package need not be installed.
    listing = subprocess.run(['find', '.'], cwd=root, check=True, capture_output=True).stdout
    archive = subprocess.run([busybox, 'cpio', '-o', '-H', 'newc'], cwd=root, input=listing,
                             check=True, capture_output=True).stdout
    with gzip.open(out, 'wb', compresslevel=1) as f:
        f.write(archive)


def _make_data_disk(work: str, out: str) -> None:
    """64 MiB ext4 with ~3 MiB of files (mkfs -d: no mount needed)."""
    content = os.path.join(work, 'data-content')
    os.makedirs(os.path.join(content, 'payload'))
    # Deterministic, incompressible enough: hash chain blocks.
    block = hashlib.sha512(b'qga-monitor e2e').digest()
    with open(os.path.join(content, 'payload', 'blob.bin'), 'wb') as f:
        written = 0
        while written < DATA_PAYLOAD_BYTES:
            block = hashlib.sha512(block).digest()
            chunk = block * 64
            f.write(chunk)
            written += len(chunk)
    _write(os.path.join(content, 'README'), 'qga-monitor e2e data disk\n')
    with open(out, 'wb') as f:
        f.truncate(DATA_DISK_MIB * 1024 * 1024)
    _run(['mkfs.ext4', '-q', '-F', '-L', 'qgadata', '-E', 'root_owner=0:0', '-d', content,
          out])


@contextlib.contextmanager
def _locked(cache_dir: str) -> Iterator[None]:
    """Serialise builders sharing one cache directory."""
    os.makedirs(cache_dir, exist_ok=True)
    with open(os.path.join(cache_dir, '.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _load(directory: str) -> GuestImage | None:
    try:
        with open(os.path.join(directory, 'manifest.json')) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    image = GuestImage(directory=directory,
                       kernel=os.path.join(directory, 'vmlinux'),
                       initrd=os.path.join(directory, 'initrd.img'),
                       data_disk=os.path.join(directory, 'data.img'),
                       manifest=manifest)
    if not all(os.path.isfile(p) for p in (image.kernel, image.initrd, image.data_disk)):
        return None
    return image


def build(cache_dir: str | None = None, force: bool = False,
          log: Callable[[str], None] = lambda msg: None) -> GuestImage:
    """Build the guest image, or return the cached one with the same inputs.

    :param cache_dir: see :func:`default_cache_dir`
    :param force: rebuild even when a cached image exists
    :param log: called with one line per build step
    :raises BuildError: a tool or package is missing, or a step failed
    """
    cache_dir = os.path.abspath(cache_dir or default_cache_dir())
    os.makedirs(cache_dir, exist_ok=True)
    qemu_ga_version = _dpkg_version('qemu-guest-agent')
    if not qemu_ga_version or not os.path.isfile(QEMU_GA):
        raise BuildError('qemu-guest-agent is not installed (tools/install_deps.sh)')
    busybox_version = _dpkg_version('busybox-static') or 'download'
    kernel = resolve_kernel_package(cache_dir)
    blocked = monitor_block_list()
    key = cache_key(kernel, qemu_ga_version, busybox_version, blocked)
    final = os.path.join(cache_dir, key)
    if not force:
        image = _load(final)
        if image is not None:
            return image
    with _locked(cache_dir):
        if not force:
            image = _load(final)  # another builder finished meanwhile
            if image is not None:
                return image
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=cache_dir, prefix='.build-') as work:
            out = os.path.join(work, 'out')
            os.makedirs(out)
            log('kernel package %s=%s' % kernel)
            deb = _fetch_deb(kernel[0], kernel[1], cache_dir)
            unpacked = os.path.join(work, 'kernel')
            _run(['dpkg-deb', '-x', deb, unpacked])
            vmlinuz = glob.glob(os.path.join(unpacked, 'boot', 'vmlinuz-*'))
            moddirs = glob.glob(os.path.join(unpacked, 'lib', 'modules', '*'))
            if len(vmlinuz) != 1 or len(moddirs) != 1:
                raise BuildError('unexpected layout of %s' % deb)
            extract_vmlinux(vmlinuz[0], os.path.join(out, 'vmlinux'))
            modules = resolve_modules(moddirs[0], ROOT_MODULES)
            log('modules: %s' % ' '.join(_module_name(m) for m in modules))
            busybox = _busybox_binary(cache_dir, work)
            _make_initramfs(os.path.join(work, 'root'), busybox, modules, blocked,
                            os.path.join(out, 'initrd.img'))
            _make_data_disk(work, os.path.join(out, 'data.img'))
            manifest = {
                'key': key,
                'kernel_package': kernel[0],
                'kernel_package_version': kernel[1],
                'kernel_release': os.path.basename(moddirs[0]),
                'qemu_guest_agent_version': qemu_ga_version,
                'busybox_static_version': busybox_version,
                'modules': [_module_name(m) for m in modules],
                'monitor_blocked': blocked,
                'variants': list(VARIANTS),
                'base_cmdline': BASE_CMDLINE,
                'build_seconds': round(time.monotonic() - started, 2),
            }
            _write(os.path.join(out, 'manifest.json'), json.dumps(manifest, indent=1) + '\n')
            if os.path.exists(final):
                shutil.rmtree(final)
            os.rename(out, final)
        # Older builds are dead weight (each is ~30 MB with its disk).
        for entry in os.listdir(cache_dir):
            path = os.path.join(cache_dir, entry)
            if entry != key and re.fullmatch(r'[0-9a-f]{20}', entry) and os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
        log('built %s in %.1f s' % (final, time.monotonic() - started))
    image = _load(final)
    if image is None:
        raise BuildError('build finished but %s is incomplete' % final)
    return image


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; prints the image directory (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--cache-dir', help='default: %s' % default_cache_dir())
    parser.add_argument('--force', action='store_true', help='rebuild even if cached')
    parser.add_argument('--json', action='store_true', help='print the image as JSON')
    args = parser.parse_args(argv)
    try:
        image = build(args.cache_dir, args.force,
                      log=lambda msg: print('build_guest_image: ' + msg, file=sys.stderr))
    except BuildError as exc:
        print('build_guest_image: %s' % exc, file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(dataclasses.asdict(image), indent=1))
    else:
        print(image.directory)
    return 0


if __name__ == '__main__':
    sys.exit(main())
