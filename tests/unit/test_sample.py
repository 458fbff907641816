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

"""ceilometer_qga.sample.to_message against Ceilometer's own serialiser.

The reference is ``ceilometer.publisher.utils.meter_message_from_counter``
applied to a real ``ceilometer.sample.Sample`` with the same fields
(ceilometer is a test requirement, imported inside the tests).
"""

import json
import uuid

from ceilometer.publisher.utils import verify_signature
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import pytest

from ceilometer_qga import sample

SECRET = 'change this for valid signing'

# The key set and order of the wire format (openstack-facts.md section 2).
WIRE_KEYS = [
    'source', 'counter_name', 'counter_type', 'counter_unit',
    'counter_volume', 'user_id', 'user_name', 'project_id', 'project_name',
    'resource_id', 'timestamp', 'resource_metadata', 'message_id',
    'monotonic_time', 'message_signature',
]


def _fields() -> dict:
    return dict(
        name='guest.filesystem.usage', type='gauge', unit='%', volume=41.5,
        user_id='u-1', project_id='p-1',
        resource_id='6f1c0c1e-0000-4000-8000-000000000001-_srv',
        timestamp='2026-08-22T10:00:00.000123',
        resource_metadata={'display_name': 'vm1', 'mountpoint': '/srv',
                           'flavor': {'name': 'm1.small', 'vcpus': 1}},
        source='openstack', id=str(uuid.uuid1()), monotonic_time=12.25,
        user_name='alice', project_name='demo')


def _ceilometer_message(fields: dict, secret, publisher_id=None) -> dict:
    from ceilometer.publisher import utils
    from ceilometer import sample as ceilo_sample

    return utils.meter_message_from_counter(
        ceilo_sample.Sample(**fields), secret, publisher_id=publisher_id)


def test_wire_keys_in_ceilometer_order():
    fields = _fields()
    ours = sample.to_message(sample.Sample(**fields), SECRET)
    theirs = _ceilometer_message(fields, SECRET)
    assert list(ours) == WIRE_KEYS
    assert list(ours) == list(theirs)
    assert ours == theirs


def test_publisher_id_is_signed_and_placed_like_ceilometer():
    fields = _fields()
    ours = sample.to_message(sample.Sample(**fields), SECRET,
                             publisher_id='qga.host1')
    theirs = _ceilometer_message(fields, SECRET, publisher_id='qga.host1')
    assert list(ours) == list(theirs)
    assert ours == theirs
    assert verify_signature(ours, SECRET)


def test_empty_secret_leaves_signature_empty():
    message = sample.to_message(sample.Sample(**_fields()), '')
    assert message['message_signature'] == ''


def test_unknown_sample_type_is_refused():
    with pytest.raises(ValueError, match='rate'):
        sample.Sample(**dict(_fields(), type='rate'))


_text = st.text(min_size=1, max_size=16)
_metadata = st.dictionaries(
    st.text(max_size=8),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: (st.lists(inner, max_size=3)
                       | st.dictionaries(st.text(max_size=6), inner,
                                         max_size=3)),
        max_leaves=10),
    max_size=6)
_sample_fields = st.fixed_dictionaries({
    'name': _text,
    'type': st.sampled_from(sample.TYPES),
    'unit': st.text(max_size=6),
    'volume': st.integers() | st.floats(allow_nan=False),
    'user_id': st.none() | _text,
    'project_id': st.none() | _text,
    'resource_id': _text,
    'timestamp': _text,
    'resource_metadata': _metadata,
    'source': _text,
    'id': st.uuids().map(str),
    'monotonic_time': st.none() | st.floats(min_value=0, allow_nan=False),
    'user_name': st.none() | _text,
    'project_name': st.none() | _text,
})


@settings(max_examples=200, deadline=None)
@given(fields=_sample_fields,
       secret=st.sampled_from(['', SECRET, 'k\u00e9y']),
       publisher_id=st.none() | _text)
def test_same_message_as_ceilometer(fields, secret, publisher_id):
    ours = sample.to_message(sample.Sample(**fields), secret,
                             publisher_id=publisher_id)
    theirs = _ceilometer_message(fields, secret, publisher_id=publisher_id)
    assert list(ours) == list(theirs)
    assert ours == theirs


def test_new_id_is_a_canonical_random_uuid():
    ids = {sample.new_id() for _ in range(2000)}
    assert len(ids) == 2000
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_ceilometer_sample_takes_our_id():
    from ceilometer import sample as ceilometer_sample

    ident = sample.new_id()
    theirs = ceilometer_sample.Sample(
        name='guest.agent.up', type='gauge', unit='agent', volume=1,
        user_id=None, project_id=None, resource_id='r', id=ident)
    assert theirs.id == ident


def test_encoded_message_is_marked_checked_and_a_bad_one_is_not():
    good = sample.Message({'counter_volume': 1, 'name': 'd\u00e4t\u00e4'})
    assert not good.checked
    assert sample.encode(good) == '{"counter_volume":1,"name":"d\u00e4t\u00e4"}'.encode()
    assert good.checked
    bad = sample.Message({'counter_volume': float('nan')})
    with pytest.raises(ValueError):
        sample.encode(bad)
    assert not bad.checked


_json_values = st.recursive(
    st.none() | st.booleans() | st.floats()
    | st.integers(min_value=-2 ** 63, max_value=2 ** 64 - 1)
    # every code point, lone surrogates included (qemu-ga's JSON may
    # escape them, "\ud800")
    | st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF),
              max_size=8)
    | st.sampled_from(['\ud800', 'a\udfffb']),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(value=st.dictionaries(st.text(max_size=5), _json_values, max_size=5))
def test_encode_accepts_what_strict_stdlib_json_accepts_and_no_more(value):
    """orjson writes the text; the standard library (strict) is the referee.

    Same verdict on every JSON-like value (lone surrogates, NaN and
    infinity anywhere are refused), and what is accepted reads back equal.
    """
    try:
        reference = json.dumps(value, ensure_ascii=False,
                               allow_nan=False).encode('utf-8')
    except ValueError:
        reference = None
    try:
        ours = sample.encode(sample.Message(value))
    except (TypeError, ValueError):
        ours = None
    assert (ours is None) == (reference is None)
    if ours is not None:
        assert json.loads(ours) == json.loads(reference)


def test_encode_refuses_integers_beyond_64_bits():
    # Stricter than the standard library, on purpose: no consumer of ours
    # (Gnocchi, Ceilometer's storage) can hold them, and the collectors
    # refuse volumes above 2**63 before this.
    with pytest.raises(TypeError):
        sample.encode({'counter_volume': 2 ** 64})


def test_checked_message_is_encoded_without_the_walk():
    message = sample.Message({'counter_volume': 1.5,
                              'resource_metadata': {'a': [1, {'b': 2.0}]}})
    first = sample.encode(message)
    assert message.checked and sample.encode(message) == first
