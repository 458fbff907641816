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
"""

from __future__ import annotations

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

    def parse(self, reply: Any) -> base.ParseResult:
        """Readings for every filesystem that reports sizes.

        :raises base.BadReply: the reply is not a list
        """
        result = base.ParseResult()
        found = []
        for index, entry in enumerate(checks.entries(reply, self.command)):
            try:
                fs = _filesystem(index, entry)
            except checks.Nonsense as exc:
                result.dropped.append(str(exc))
                continue
            if fs is not None:
                found.append(fs)
        kept = checks.cap(_dedupe(found),
                          self.conf.qga_polling.max_items,
                          'filesystems', result.dropped)
        for fs in kept:
            result.readings.extend(_readings(fs))
        return result


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
