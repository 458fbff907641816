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

"""Turn one guest's report into Ceilometer samples.

This is where the engine owns, once for every collector: the meter lookup,
the generic sanity check of each value, resource ids, and the resource
metadata (Ceilometer's instance fields plus the guest's OS facts).  It also
emits the two liveness meters, which every guest gets in every sweep
whatever state its agent is in.
"""

from __future__ import annotations

import functools
import hashlib
import string
from typing import Any

from ceilometer_qga.collectors import base as collector_base
from ceilometer_qga.collectors import checks
from ceilometer_qga import meters as meters_mod
from ceilometer_qga.report import GuestReport
from ceilometer_qga import sample as sample_mod

#: Gnocchi's limit on original resource ids
MAX_RESOURCE_ID = 255
_ID_SAFE = frozenset(string.ascii_letters + string.digits + '.-')


# Every sweep asks again for the same few ids per guest (its mountpoints,
# disks, interfaces); the bound keeps hostile guests that rename their
# items every sweep from growing it.
@functools.lru_cache(maxsize=65536)
def resource_id(instance_id: str, item: str | None) -> str:
    """Resource id: the instance uuid, or ``<uuid>-<escaped item>``.

    Gnocchi puts resource ids into URL paths unquoted and refuses ``/``, so
    ids keep only ``[A-Za-z0-9.-]`` and every other byte of the item's
    UTF-8 becomes ``_XX`` (``_`` itself included): ``/`` is ``_2F``,
    ``/var/lib`` is ``_2Fvar_2Flib``.  That is stable and reversible, and
    disk and interface names (``vda``, ``eth0``) come out unchanged, as in
    Ceilometer.  An id that would exceed Gnocchi's 255 characters uses the
    SHA-1 of the item instead (the item itself stays in the metadata).
    """
    if item is None:
        return instance_id
    escaped = ''.join(
        ch if ch in _ID_SAFE else ''.join(
            '_%02X' % b for b in ch.encode('utf-8', 'surrogatepass'))
        for ch in item)
    rid = '%s-%s' % (instance_id, escaped)
    if len(rid) > MAX_RESOURCE_ID:
        digest = hashlib.sha1(item.encode('utf-8', 'surrogatepass'))
        rid = '%s-%s' % (instance_id, digest.hexdigest())
    return rid


def item_name(instance_id: str, rid: str) -> str | None:
    """The item (mountpoint, disk, interface) a resource id was made from.

    The inverse of :func:`resource_id`, for tables that people read:
    ``<uuid>-_2Fvar_2Flib`` gives ``/var/lib``, the uuid itself gives None.
    A hashed id (item too long) cannot be reversed and comes back as is;
    so does an id that is not ``<instance_id>-...``.
    """
    if rid == instance_id:
        return None
    prefix = instance_id + '-'
    if not rid.startswith(prefix):
        return rid
    escaped = rid[len(prefix):]
    out = bytearray()
    i = 0
    while i < len(escaped):
        ch = escaped[i]
        if ch == '_':
            code = escaped[i + 1:i + 3]
            if len(code) != 2 or not all(c in string.hexdigits
                                         for c in code):
                return escaped  # not made by resource_id(): show it raw
            out.append(int(code, 16))
            i += 3
        else:
            out += ch.encode('ascii', 'replace')
            i += 1
    return out.decode('utf-8', 'replace')


def instance_metadata(report: GuestReport) -> dict[str, Any]:
    """The metadata every sample of the guest carries: Nova's instance
    fields (or the static guest's), its identity, and its OS facts.
    """
    guest = report.guest
    instance_md = dict(guest.metadata)
    instance_md.setdefault('instance_id', guest.instance_id)
    instance_md.setdefault('name', guest.name)
    if guest.display_name is not None:
        instance_md.setdefault('display_name', guest.display_name)
    instance_md.update(report.facts)
    return instance_md


def build_samples(report: GuestReport,
                  meters: dict[str, collector_base.Meter],
                  timestamp: str, monotonic_time: float,
                  dropped: dict[str, list[str]] | None = None,
                  instance_md: dict[str, Any] | None = None) -> list[
                      sample_mod.Sample]:
    """All samples of one guest for one sweep, liveness first.

    Each sample's ``resource_metadata`` is a copy of ``instance_md``
    (:func:`instance_metadata` when None) plus the sample's own pairs; the
    copies share the values, which signing relies on
    (:class:`~ceilometer_qga.signature.SharedMetadata`).

    :param dropped: filled with collector name -> reasons for every value
        left out (by the collector or here); the caller logs them, once
        per incident (:meth:`ceilometer_qga.session.GuestSession.
        log_dropped`), never once per value: a guest can send 10,000 bad
        values a sweep.
    """
    if dropped is None:
        dropped = {}
    guest = report.guest
    if instance_md is None:
        instance_md = instance_metadata(report)

    def make(meter: collector_base.Meter, volume: float | int,
             item: str | None, extra: dict[str, Any]) -> sample_mod.Sample:
        md = dict(instance_md)
        md.update(extra)
        return sample_mod.Sample(
            name=meter.name, type=meter.type, unit=meter.unit, volume=volume,
            user_id=guest.user_id, project_id=guest.project_id,
            resource_id=resource_id(guest.instance_id, item),
            timestamp=timestamp, resource_metadata=md,
            monotonic_time=monotonic_time)

    state_md = {'agent_state': report.state}
    if report.error:
        state_md['agent_error'] = checks.clean_text(report.error[:500])
    samples = [make(meters_mod.AGENT_UP, 1 if report.up else 0, None, state_md)]
    if report.latency_ms is not None:
        samples.append(make(meters_mod.AGENT_LATENCY, round(report.latency_ms, 3), None,
                            {}))
    for outcome in report.outcomes:
        reasons = list(outcome.result.dropped)
        for reading in outcome.result.readings:
            meter = meters.get(reading.meter)
            if meter is None:
                reasons.append('unknown meter %s' % checks.show(reading.meter))
                continue
            if not checks.valid_volume(reading.volume):
                reasons.append('%s=%s is not a sane value'
                               % (reading.meter, checks.show(reading.volume)))
                continue
            extra = dict(reading.metadata)
            extra['collected_by'] = outcome.source
            samples.append(make(meter, reading.volume, reading.item, extra))
        if reasons:
            dropped.setdefault(outcome.name, []).extend(reasons)
    return samples
