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

"""Samples, field for field as Ceilometer's ``ceilometer.sample.Sample``.

The poller builds :class:`Sample` objects; :func:`to_message` turns one into
the dict Ceilometer's polling agent puts on the bus
(``ceilometer.publisher.utils.meter_message_from_counter``), signed with
``[publisher] telemetry_secret`` exactly as Ceilometer signs it.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import orjson

from ceilometer_qga import signature

TYPES = ('gauge', 'delta', 'cumulative')

# The variant nibble of an RFC 4122 UUID: 10xx in binary.
_VARIANT = '89ab'


def new_id() -> str:
    """A random (version 4) UUID in its canonical text form.

    Ceilometer's own samples carry ``str(uuid.uuid1())``
    (``ceilometer/sample.py``), and it takes any string as an id (samples
    posted to its API bring their own); nothing downstream reads the time or
    node out of it.  Formatted from 16 random bytes directly, which costs a
    fraction of building a ``uuid.UUID`` object per sample.
    """
    h = os.urandom(16).hex()
    return (f'{h[:8]}-{h[8:12]}-4{h[13:16]}-'
            f'{_VARIANT[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}')


@dataclasses.dataclass(slots=True)
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
    id: str = dataclasses.field(default_factory=new_id)
    monotonic_time: float | None = None
    user_name: str | None = None
    project_name: str | None = None

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError('sample type %r is not one of %s'
                             % (self.type, ', '.join(TYPES)))


class Message(dict):
    """A signed wire dict that remembers that :func:`encode` accepted it.

    The poller checks every message by encoding it; the publishers' own
    admission check (:meth:`~ceilometer_qga.publishers.buffer.
    BufferedPublisher._admit`) then skips what the poller already checked.
    Nothing changes a message after it is signed (the signature would no
    longer hold), so the mark cannot go stale.  Only the mark is kept, not
    the text: a sweep's messages wait in the publishers' queues, and their
    text would double the memory they take there.
    """

    __slots__ = ('checked',)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.checked = False


def to_message(sample: Sample, secret: str | None,
               publisher_id: str | None = None,
               shared: signature.SharedMetadata | None = None) -> Message:
    """Return the signed wire dict of one sample.

    Same keys, same order and same signature as Ceilometer's
    ``meter_message_from_counter``.

    :param shared: the text of metadata pairs this sample shares with the
        guest's other samples, to sign with less work (same signature)
    """
    msg = Message({
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
    })
    if publisher_id is not None:
        msg['publisher_id'] = publisher_id
    msg['message_signature'] = signature.compute(msg, secret, shared)
    return msg


def encode(message: dict[str, Any]) -> bytes:
    """The strict JSON of a wire dict, as UTF-8 bytes; raises if it has none.

    Strict: no NaN or infinity, and only text UTF-8 can carry (no lone
    surrogates), so that whatever passes is valid for every consumer.

    ``orjson`` writes it: the standard library's encoder is a large share
    of the poller's CPU at fleet scale.  This text is what the
    ``file://`` publisher writes and what the poller encodes to check each
    guest's samples; the ``notifier://`` publisher hands the dicts to
    oslo.messaging, which serialises the notification itself, so what
    Ceilometer receives is unchanged.  ``orjson`` refuses lone surrogates,
    integers beyond 64 bits and types JSON has no form for, but writes NaN
    and infinity as ``null``: those are refused here first.  A
    :class:`Message` that encodes is marked ``checked``; one marked already
    skips that walk (nothing changes a message after it is signed).

    :raises ValueError: (``orjson.JSONEncodeError`` and
        ``UnicodeEncodeError`` included) or TypeError
    """
    checked = isinstance(message, Message)
    if not (checked and message.checked):
        _refuse_non_finite(message)
    data = orjson.dumps(message)
    if checked:
        message.checked = True
    return data


def _refuse_non_finite(container: Any) -> None:
    """Raise ValueError at the first NaN or infinity anywhere in a dict or
    list (the common leaves are tested inline: this runs once per sample).
    """
    items = container.values() if isinstance(container, dict) else container
    for value in items:
        kind = type(value)
        if kind is str or kind is int or value is None:
            continue
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError('%r is not valid JSON' % value)
        elif isinstance(value, (dict, list, tuple)):
            _refuse_non_finite(value)
