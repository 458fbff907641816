"""Build the Debian 12 cloud guest of the guest-side e2e tests, cached.

A Debian 12 system made by ``mmdebstrap`` from Debian's own packages: the
cloud kernel, systemd, udev, cloud-init and qemu-guest-agent, as in Debian's
cloud images.  Two root filesystems come out of one bootstrap:

* ``stock.qcow2``: nothing of ours; cloud-init (ConfigDrive datasource)
  delivers the monitor agent from the vendor data or user-data;
* ``element.qcow2``: the same system after the diskimage-builder element
  ``guest/diskimage-builder/elements/qga-monitor`` ran in it (its static
  files copied, its ``install.d`` and ``post-install.d`` scripts run in a
  chroot, as disk-image-create runs them).

The root filesystem is a whole disk (``root=/dev/vda``, ext4 made with
``mkfs.ext4 -d``: no partition table, no loop device), booted with the
image's own kernel and initramfs (``vmlinuz``, ``initrd.img``).

Output: ``<cache>/<key>/{vmlinuz,initrd.img,stock.qcow2,element.qcow2,
manifest.json}``; the key hashes the package list, this file and the
element's files, so a change to either rebuilds.  The cache is
``$QGA_DEBIAN_IMAGE_CACHE``, else ``/var/cache/qga-monitor/debian-image``.

Usage::

    python tools/build_debian_image.py [--force] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ELEMENT = os.path.join(ROOT, 'guest', 'diskimage-builder', 'elements', 'qga-monitor')
MIRROR = 'http://deb.debian.org/debian'
SUITE = 'bookworm'
PACKAGES = ('linux-image-cloud-amd64', 'systemd-sysv', 'udev', 'cloud-init',
            'qemu-guest-agent', 'e2fsprogs', 'iproute2', 'procps')
ROOTFS_SIZE = '2G'
CMDLINE = 'root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet'

#: cloud-init: only the config drive (ds-identify would find it; no
#: metadata-service probing without a network).
DATASOURCES = 'datasource_list: [ ConfigDrive, NoCloud, None ]\n'


class BuildError(Exception):
    """The image could not be built."""


@dataclasses.dataclass(frozen=True)
class DebianImage:
    """A built image.

    :ivar kernel: the image's vmlinuz
    :ivar initrd: the image's initramfs
    :ivar stock: qcow2 root disk without the monitor agent
    :ivar element: qcow2 root disk built with the DIB element
    :ivar cmdline: kernel command line
    :ivar manifest: build time (s), sizes (bytes), package versions
    """
    kernel: str
    initrd: str
    stock: str
    element: str
    cmdline: str
    manifest: dict


def default_cache_dir() -> str:
    return os.environ.get('QGA_DEBIAN_IMAGE_CACHE') or '/var/cache/qga-monitor/debian-image'


def cache_key() -> str:
    h = hashlib.sha256()
    h.update(repr((PACKAGES, SUITE, ROOTFS_SIZE, CMDLINE, DATASOURCES)).encode())
    with open(os.path.abspath(__file__), 'rb') as f:
        h.update(f.read())
    for path in sorted(glob.glob(os.path.join(ELEMENT, '**'), recursive=True)):
        if os.path.isfile(path):
            h.update(os.path.relpath(path, ELEMENT).encode())
            with open(path, 'rb') as f:
                h.update(f.read())
    return h.hexdigest()[:20]


def _run(argv: list[str], **kwargs) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        raise BuildError('%s failed (%d):\n%s\n%s' % (
            ' '.join(argv), proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    return proc.stdout


def _make_disk(rootdir: str, out: str, work: str) -> None:
    raw = os.path.join(work, 'root.raw')
    _run(['mkfs.ext4', '-q', '-F', '-L', 'cloudimg-rootfs', '-d', rootdir, raw, ROOTFS_SIZE])
    _run(['qemu-img', 'convert', '-O', 'qcow2', raw, out + '.tmp'])
    os.unlink(raw)
    os.replace(out + '.tmp', out)


def apply_element(rootdir: str) -> str:
    """Run the DIB element in ``rootdir`` as disk-image-create would: static
    files copied, install.d then post-install.d scripts in a chroot.
    Returns the post-install output (the agent's computed command line)."""
    static = os.path.join(ELEMENT, 'static')
    _run(['cp', '-a', static + '/.', rootdir + '/'])
    out = ''
    for phase in ('install.d', 'post-install.d'):
        target = os.path.join(rootdir, 'tmp', 'qga-monitor-element', phase)
        shutil.copytree(os.path.join(ELEMENT, phase), target)
        for script in sorted(os.listdir(target)):
            out += _run(['chroot', rootdir, '/bin/bash',
                         '/tmp/qga-monitor-element/%s/%s' % (phase, script)])
    shutil.rmtree(os.path.join(rootdir, 'tmp', 'qga-monitor-element'))
    return out


def build(cache_dir: str | None = None, force: bool = False) -> DebianImage:
    """Return the cached image, building it first when missing."""
    cache_dir = cache_dir or default_cache_dir()
    os.makedirs(cache_dir, exist_ok=True)
    entry = os.path.join(cache_dir, cache_key())
    with open(os.path.join(cache_dir, '.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest_path = os.path.join(entry, 'manifest.json')
        if force or not os.path.exists(manifest_path):
            _build(entry)
            _prune(cache_dir, keep=os.path.basename(entry))
        with open(manifest_path) as f:
            manifest = json.load(f)
    return DebianImage(kernel=os.path.join(entry, 'vmlinuz'),
                       initrd=os.path.join(entry, 'initrd.img'),
                       stock=os.path.join(entry, 'stock.qcow2'),
                       element=os.path.join(entry, 'element.qcow2'),
                       cmdline=CMDLINE, manifest=manifest)


def _prune(cache_dir: str, keep: str) -> None:
    """Remove the built entries of other keys (about 1 GB each)."""
    for name in os.listdir(cache_dir):
        path = os.path.join(cache_dir, name)
        if name != keep and os.path.exists(os.path.join(path, 'manifest.json')):
            shutil.rmtree(path, ignore_errors=True)


def _build(entry: str) -> None:
    started = time.monotonic()
    shutil.rmtree(entry, ignore_errors=True)
    work = tempfile.mkdtemp(prefix='debimg', dir=os.path.dirname(entry))
    try:
        rootdir = os.path.join(work, 'root')
        hooks = [
            'echo qga-e2e > "$1/etc/hostname"',
            'echo "/dev/vda / ext4 defaults 0 1" > "$1/etc/fstab"',
            'printf %%s "%s" > "$1/etc/cloud/cloud.cfg.d/90-qga-e2e.cfg"' % DATASOURCES,
        ]
        argv = ['mmdebstrap', '--mode=root', '--variant=apt', '--quiet',
                '--include=' + ','.join(PACKAGES)]
        for hook in hooks:
            argv.append('--customize-hook=' + hook)
        argv += [SUITE, rootdir, MIRROR]
        _run(argv, timeout=3600)
        bootstrapped = time.monotonic()
        versions = {}
        for line in _run(['chroot', rootdir, 'dpkg-query', '-W', '-f',
                          '${Package} ${Version}\\n']).splitlines():
            name, version = line.split(' ', 1)
            if name in ('cloud-init', 'qemu-guest-agent', 'systemd', 'udev') or \
                    name.startswith('linux-image-'):
                versions[name] = version
        os.makedirs(entry + '.new', exist_ok=True)
        kernel = sorted(glob.glob(os.path.join(rootdir, 'boot', 'vmlinuz-*')))[-1]
        initrd = sorted(glob.glob(os.path.join(rootdir, 'boot', 'initrd.img-*')))[-1]
        shutil.copy(kernel, os.path.join(entry + '.new', 'vmlinuz'))
        shutil.copy(initrd, os.path.join(entry + '.new', 'initrd.img'))
        _make_disk(rootdir, os.path.join(entry + '.new', 'stock.qcow2'), work)
        element_out = apply_element(rootdir)
        _make_disk(rootdir, os.path.join(entry + '.new', 'element.qcow2'), work)
        sizes = {name: os.path.getsize(os.path.join(entry + '.new', name))
                 for name in ('vmlinuz', 'initrd.img', 'stock.qcow2', 'element.qcow2')}
        manifest = {'packages': versions, 'sizes': sizes,
                    'mmdebstrap_seconds': round(bootstrapped - started, 1),
                    'build_seconds': round(time.monotonic() - started, 1),
                    'element_output': element_out.strip()}
        with open(os.path.join(entry + '.new', 'manifest.json'), 'w') as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
        os.replace(entry + '.new', entry)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(entry + '.new', ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--force', action='store_true', help='rebuild even when cached')
    parser.add_argument('--json', action='store_true', help='print the image as JSON')
    args = parser.parse_args(argv)
    try:
        image = build(force=args.force)
    except BuildError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(dataclasses.asdict(image), indent=2))
    else:
        print(image.stock, image.element, json.dumps(image.manifest))
    return 0


if __name__ == '__main__':
    sys.exit(main())
