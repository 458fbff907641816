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

"""Filesystem usage per mountpoint, from ``guest-get-fsinfo``.

What the agent reports (qemu ``qga/commands-posix.c``, ``commands-win32.c``):

* Linux agents ``statvfs()`` every mounted block-device filesystem.
  ``used-bytes`` is ``(f_blocks - f_bfree) * f_frsize``; ``total-bytes`` is
  ``used + f_bavail * f_frsize``, i.e. used plus what is *available to
  non-root users*.  It is not ``df``'s Size: the blocks reserved for root
  are left out, so ``guest.filesystem.total`` is smaller than the device and
  ``guest.filesystem.usage`` equals ``df``'s Use% (which is computed the
  same way).  qemu-ga 9.1+ adds ``total-bytes-privileged`` (used + free
  including the root reserve); when present it goes into the metadata.
* Agents older than 3.0 send no sizes at all; Windows agents send none for
  volumes without a drive letter ("System Reserved", ``\\\\?\\Volume{GUID}\\``
  names).  Such entries are skipped quietly: there is nothing to measure.
* Bind mounts are listed once per mountpoint with the same device ``name``
  and the same figures (qemu issues 520/592).  They are folded into one
  resource, the shortest mountpoint, so that one filesystem is one resource.
  btrfs subvolumes mounted apart (``/`` and ``/home`` on one device) fold
  the same way; ``statvfs`` gives the same figures for all of them anyway.
* A path mounted over twice appears twice; ``statvfs`` of that path sees the
  top mount for both, so the last entry (the visible one) is kept.

Fallback for agents whose fsinfo carries no sizes at all (older than 3.0,
e.g. CentOS 7's 2.12): some such guests run a patched agent that adds
``guest-get-statvfs`` (``{"path": str}`` -> ``f_bsize,
f_frsize, f_blocks, f_bfree, f_bavail, f_files, f_ffree, f_favail, f_fsid,
f_flag, f_namemax``).  The engine then reads ``/proc/mounts`` and asks
``statvfs`` of every mountpoint qemu-ga itself would list (a device path
starting with ``/``, not smbfs/cifs: ``build_fs_mount_list_from_mtab`` in
``qga/commands-posix.c``), one per device and at most ``max_items``.  The
figures are computed as the modern agent computes fsinfo's, so a guest
keeps its values when its agent is upgraded: ``used = (f_blocks - f_bfree)
* f_frsize`` and ``total = used + f_bavail * f_frsize``.
"""

from __future__ import annotations

import re
from typing import Any

from ceilometer_qga.collectors import base
from ceilometer_qga.collectors import checks

USED = 'guest.filesystem.used'
TOTAL = 'guest.filesystem.total'
USAGE = 'guest.filesystem.usage'


class FilesystemCollector(base.Collector):
    """guest.filesystem.used/.total (B) and .usage (%) per mountpoint."""

    meters = (
        base.Meter(USED, base.GAUGE, 'B', 'filesystem'),
        base.Meter(TOTAL, base.GAUGE, 'B', 'filesystem'),
        base.Meter(USAGE, base.GAUGE, '%', 'filesystem'),
    )
    command = 'guest-get-fsinfo'
    fallback_file = '/proc/mounts'
    fallback_command = 'guest-get-statvfs'
    # Sizes change slowly, and fsinfo is among the costlier commands
    # (a statvfs and a walk of sysfs per mount, one statvfs command per
    # mountpoint by the fallback): every 300 s, as KubeVirt reads it.
    interval = 300

    def parse(self, reply: Any) -> base.ParseResult:
        """Readings for every filesystem that reports sizes.

        Incomplete when there are filesystems but none has sizes.

        :raises base.BadReply: the reply is not a list
        """
        result = base.ParseResult()
        found = []
        entries = checks.entries(reply, self.command)
        for index, entry in enumerate(entries):
            try:
                fs = _filesystem(index, entry)
            except checks.Nonsense as exc:
                result.dropped.append(str(exc))
                continue
            if fs is not None:
                found.append(fs)
        result.incomplete = bool(entries) and not found and not result.dropped
        self._emit(found, result)
        return result

    def fallback_items(self, text: str) -> list[str]:
        """Mountpoints of ``/proc/mounts`` to ask ``guest-get-statvfs`` of.

        :raises base.BadReply: not text
        """
        return [m['mountpoint'] for m in self._mounts(text)]

    def parse_fallback(self, text: str, replies: dict[str, Any]
                       ) -> base.ParseResult:
        """Readings from ``/proc/mounts`` and the statvfs of each mountpoint.

        :raises base.BadReply: not text
        """
        result = base.ParseResult()
        found = []
        for mount in self._mounts(text):
            mountpoint = mount['mountpoint']
            if mountpoint not in replies:
                continue
            try:
                used, total = statvfs_sizes(replies[mountpoint],
                                            'filesystem %r' % mountpoint)
            except checks.Nonsense as exc:
                result.dropped.append(str(exc))
                continue
            metadata = {'mountpoint': mountpoint, 'fstype': mount['type'],
                        'device': mount['device']}
            found.append({'mountpoint': mountpoint,
                          'device': mount['device'], 'used': used,
                          'total': total, 'metadata': metadata})
        self._emit(found, result)
        return result

    def _emit(self, found: list[dict[str, Any]],
              result: base.ParseResult) -> None:
        kept = checks.cap(_dedupe(found), self.conf.qga_polling.max_items,
                          'filesystems', result.dropped)
        for fs in kept:
            result.readings.extend(_readings(fs))

    def _mounts(self, text: Any) -> list[dict[str, Any]]:
        """The measurable mounts, one per device, at most ``max_items``."""
        mounts = parse_mounts(text)
        deduped = _dedupe([dict(m, metadata={}) for m in mounts])
        return deduped[:self.conf.qga_polling.max_items]


#: network filesystems whose "device" starts with ``/`` all the same
_NETWORK_FSTYPES = frozenset({'smbfs', 'cifs'})
_OCTAL = re.compile(r'\\([0-7]{3})')


def parse_mounts(text: Any) -> list[dict[str, str]]:
    """``[{device, mountpoint, type}]`` of the block-device mounts.

    ``/proc/mounts`` escapes space, tab, newline and backslash in octal
    (``\\040``); those are decoded.  Mountpoints that are not absolute, too
    long, or carry control characters are left out.

    :raises base.BadReply: not text
    """
    if not isinstance(text, str):
        raise base.BadReply('/proc/mounts content is not text')
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        device, mountpoint, fstype = (_unescape(f) for f in fields[:3])
        if not device.startswith('/') or fstype in _NETWORK_FSTYPES:
            continue
        try:
            mountpoint = checks.name(mountpoint, 'mountpoint')
        except checks.Nonsense:
            continue
        if not mountpoint.startswith('/'):
            continue
        if device.startswith('/dev/'):
            # The kernel name, as fsinfo's ``name`` has it (``vda1``).
            device = device[len('/dev/'):]
        mounts.append({'device': device[:checks.MAX_NAME],
                       'mountpoint': mountpoint,
                       'type': fstype[:checks.MAX_NAME]})
    return mounts


def statvfs_sizes(reply: Any, what: str) -> tuple[int, int]:
    """(used, total) bytes from a ``guest-get-statvfs`` reply, as fsinfo.

    ``f_frsize`` is the unit of the block counts; a reply with 0 there (some
    old libcs) falls back on ``f_bsize``, as ``df`` does.

    :raises checks.Nonsense: not an object, or figures that make no sense
    """
    if not isinstance(reply, dict):
        raise checks.Nonsense('%s statvfs is not an object (%s)'
                              % (what, checks.show(reply)))
    fields = {key: checks.count(reply.get(key), '%s %s' % (what, key))
              for key in ('f_blocks', 'f_bfree', 'f_bavail')}
    unit = reply.get('f_frsize')
    if unit in (0, None):
        unit = reply.get('f_bsize')
    unit = checks.count(unit, what + ' f_frsize')
    if unit == 0:
        raise checks.Nonsense('%s has a block size of 0' % what)
    if fields['f_bfree'] > fields['f_blocks']:
        raise checks.Nonsense('%s f_bfree %d exceeds f_blocks %d'
                              % (what, fields['f_bfree'], fields['f_blocks']))
    used = checks.count((fields['f_blocks'] - fields['f_bfree']) * unit,
                        what + ' used bytes')
    total = checks.count(used + fields['f_bavail'] * unit,
                         what + ' total bytes')
    return used, total


def _unescape(field: str) -> str:
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def _filesystem(index: int, entry: Any) -> dict[str, Any] | None:
    """Validate one fsinfo entry; None when it carries no sizes at all.

    :raises checks.Nonsense: the entry cannot be reported
    """
    if not isinstance(entry, dict):
        raise checks.Nonsense('filesystem #%d is not an object (%s)'
                              % (index, checks.show(entry)))
    used = entry.get('used-bytes')
    total = entry.get('total-bytes')
    if used is None and total is None:
        return None
    mountpoint = checks.name(entry.get('mountpoint'),
                             'mountpoint of filesystem #%d' % index)
    what = 'filesystem %r' % mountpoint
    used = checks.count(used, what + ' used-bytes')
    total = checks.count(total, what + ' total-bytes')
    if used > total:
        raise checks.Nonsense('%s used-bytes %s exceeds total-bytes %s'
                              % (what, used, total))
    metadata: dict[str, Any] = {'mountpoint': mountpoint}
    fstype = checks.text(entry.get('type'))
    if fstype is not None:
        metadata['fstype'] = fstype
    device = checks.text(entry.get('name'))
    if device:
        metadata['device'] = device
    privileged = entry.get('total-bytes-privileged')
    if privileged is not None:
        try:
            metadata['total_bytes_privileged'] = checks.count(
                privileged, what + ' total-bytes-privileged')
        except checks.Nonsense:
            # Only metadata: the meters stand without it.
            pass
    return {'mountpoint': mountpoint, 'device': device, 'used': used,
            'total': total, 'metadata': metadata}


def _dedupe(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per device (shortest mountpoint) and per mountpoint (last).

    Entries without a device name cannot be matched up and are kept as
    they are.  The guest's order is otherwise preserved.
    """
    by_mountpoint: dict[str, dict[str, Any]] = {}
    for fs in found:
        by_mountpoint.pop(fs['mountpoint'], None)
        by_mountpoint[fs['mountpoint']] = fs
    best: dict[str, dict[str, Any]] = {}
    for fs in by_mountpoint.values():
        device = fs['device']
        if not device:
            continue
        current = best.get(device)
        key = (len(fs['mountpoint']), fs['mountpoint'])
        if current is None or key < (len(current['mountpoint']),
                                     current['mountpoint']):
            best[device] = fs
    return [fs for fs in by_mountpoint.values()
            if not fs['device'] or best[fs['device']] is fs]


def _readings(fs: dict[str, Any]) -> list[base.Reading]:
    mountpoint = fs['mountpoint']
    metadata = fs['metadata']
    readings = [
        base.Reading(USED, fs['used'], mountpoint, dict(metadata)),
        base.Reading(TOTAL, fs['total'], mountpoint, dict(metadata)),
    ]
    if fs['total'] > 0:
        readings.append(base.Reading(
            # used/total first: it is at most 1.0 even after rounding, so
            # the percentage never exceeds 100.
            USAGE, 100.0 * (fs['used'] / fs['total']), mountpoint,
            dict(metadata)))
    return readings
