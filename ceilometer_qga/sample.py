"""Samples, field for field as Ceilometer's ``ceilometer.sample.Sample``.

The poller builds :class:`Sample` objects; :func:`to_message` turns one into
the dict Ceilometer's polling agent puts on the bus
(``ceilometer.publisher.utils.meter_message_from_counter``), signed with
``[publisher] telemetry_secret`` exactly as Ceilometer signs it.
"""

from __future__ import annotations

import dataclasses
from typing import Any
import uuid

from oslo_serialization import jsonutils

from ceilometer_qga import signature

TYPES = ('gauge', 'delta', 'cumulative')


@dataclasses.dataclass
class Sample:
    """One measurement, with Ceilometer's field names and meaning."""

    name: str
    type: str
    unit: str
    volume: float | int
    user_id: str | None
    project_id: str | None
    resource_id: str
    timestamp: str
    resource_metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    source: str = 'openstack'
    id: str = dataclasses.field(default_factory=lambda: str(uuid.uuid1()))
    monotonic_time: float | None = None
    user_name: str | None = None
    project_name: str | None = None

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError('sample type %r is not one of %s'
                             % (self.type, ', '.join(TYPES)))


def to_message(sample: Sample, secret: str | None,
               publisher_id: str | None = None) -> dict[str, Any]:
    """Return the signed wire dict of one sample.

    Same keys, same order and same signature as Ceilometer's
    ``meter_message_from_counter``.
    """
    msg: dict[str, Any] = {
        'source': sample.source,
        'counter_name': sample.name,
        'counter_type': sample.type,
        'counter_unit': sample.unit,
        'counter_volume': sample.volume,
        'user_id': sample.user_id,
        'user_name': sample.user_name,
        'project_id': sample.project_id,
        'project_name': sample.project_name,
        'resource_id': sample.resource_id,
        'timestamp': sample.timestamp,
        'resource_metadata': sample.resource_metadata,
        'message_id': sample.id,
        'monotonic_time': sample.monotonic_time,
    }
    if publisher_id is not None:
        msg['publisher_id'] = publisher_id
    msg['message_signature'] = signature.compute(msg, secret)
    return msg


def encode(message: dict[str, Any]) -> bytes:
    """The strict JSON of a wire dict, as UTF-8 bytes; raises if it has none.

    Strict: no NaN or infinity, and only text UTF-8 can carry (no lone
    surrogates), so that whatever passes is valid for every consumer.

    :raises ValueError: (``UnicodeEncodeError`` included) or TypeError
    """
    return jsonutils.dumps(message, ensure_ascii=False,
                           allow_nan=False).encode('utf-8')
