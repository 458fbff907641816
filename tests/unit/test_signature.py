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

"""ceilometer_qga.signature against Ceilometer's documented algorithm and code.

Two independent references: a signature worked out by hand from the
algorithm in ``ceilometer/publisher/utils.py`` (the name/value pairs written
out one by one), and Ceilometer's own ``compute_signature`` and
``verify_signature`` (ceilometer is a test requirement, imported inside the
tests so that the package itself never needs it).
"""

import hashlib
import hmac

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import pytest

from ceilometer_qga import signature

SECRET = 'sekr\u00e9t'

# Nested dicts, an empty dict, a list with a non-ASCII string, a tuple
# holding a dict, None, an int and a float: every branch of the algorithm.
MESSAGE = {
    'source': 'openstack',
    'counter_name': 'guest.filesystem.used',
    'counter_volume': 1536,
    'user_name': None,
    'monotonic_time': 12.5,
    'resource_metadata': {
        'display_name': 'vm-\u00fcn\u00efcode',
        'flavor': {'vcpus': 2, 'name': 'm1.small'},
        'mountpoints': ['/', '/srv/d\u00e4t\u00e4'],
        'disks': ({'name': 'vda', 'bus': 'virtio'},),
        'empty': {},
    },
    'message_signature': 'not part of the signed text',
}

# The same message as the pairs Ceilometer feeds to the HMAC, in order:
# keys sorted at every level, nested dicts flattened with ':', the empty
# dict contributing nothing, message_signature skipped, every value passed
# through str() -- and lists/tuples first through decode_unicode, which
# makes their strings bytes (so their text shows b'...' with UTF-8 escapes)
# and rebuilds their dicts in sorted key order.
EXPECTED_PAIRS = [
    ('counter_name', 'guest.filesystem.used'),
    ('counter_volume', '1536'),
    ('monotonic_time', '12.5'),
    ('resource_metadata:disks', "[{b'bus': b'virtio', b'name': b'vda'}]"),
    ('resource_metadata:display_name', 'vm-\u00fcn\u00efcode'),
    ('resource_metadata:flavor:name', 'm1.small'),
    ('resource_metadata:flavor:vcpus', '2'),
    ('resource_metadata:mountpoints', r"[b'/', b'/srv/d\xc3\xa4t\xc3\xa4']"),
    ('source', 'openstack'),
    ('user_name', 'None'),
]


def _hand_rolled_signature() -> str:
    text = b''.join(name.encode('utf-8') + value.encode('utf-8')
                    for name, value in EXPECTED_PAIRS)
    return hmac.new(SECRET.encode('utf-8'), text, hashlib.sha256).hexdigest()


def test_matches_hand_computed_signature():
    assert signature.compute(MESSAGE, SECRET) == _hand_rolled_signature()


def test_bytes_secret_is_the_same_secret():
    assert (signature.compute(MESSAGE, SECRET.encode('utf-8'))
            == _hand_rolled_signature())


def test_existing_signature_is_ignored():
    unsigned = {k: v for k, v in MESSAGE.items() if k != 'message_signature'}
    assert signature.compute(unsigned, SECRET) == _hand_rolled_signature()


@pytest.mark.parametrize('secret', ['', None])
def test_no_secret_means_no_signature(secret):
    assert signature.compute(MESSAGE, secret) == ''


def test_ceilometer_verifies_our_signature_and_rejects_tampering():
    from ceilometer.publisher import utils

    signed = dict(MESSAGE, message_signature=signature.compute(MESSAGE, SECRET))
    assert utils.verify_signature(signed, SECRET)
    assert not utils.verify_signature(dict(signed, counter_volume=1537), SECRET)
    assert not utils.verify_signature(signed, 'another secret')


def test_unsortable_keys_fail_like_ceilometer():
    with pytest.raises(TypeError):
        signature.compute({'a': 1, 2: 3}, SECRET)


# Values as they come out of JSON, plus tuples (which Ceilometer's
# decode_unicode treats like lists).
_scalars = (st.none() | st.booleans() | st.integers() | st.floats()
            | st.text(max_size=12))
_values = st.recursive(
    _scalars,
    lambda inner: (st.lists(inner, max_size=4)
                   | st.tuples(inner, inner)
                   | st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=16)
_messages = st.dictionaries(st.text(max_size=10), _values, max_size=8)
_secrets = st.none() | st.text(max_size=12)


@settings(max_examples=400, deadline=None)
@given(message=_messages, secret=_secrets)
def test_same_as_ceilometer_compute_signature(message, secret):
    from ceilometer.publisher import utils

    assert (signature.compute(message, secret)
            == utils.compute_signature(message, secret))


@settings(max_examples=200, deadline=None)
@given(message=_messages, secret=st.text(min_size=1, max_size=12),
       tamper=st.text(max_size=6))
def test_same_verdict_as_ceilometer_verify_signature(message, secret, tamper):
    from ceilometer.publisher import utils

    signed = dict(message,
                  message_signature=signature.compute(message, secret))
    assert utils.verify_signature(signed, secret)

    tampered = dict(signed, tampered=tamper)
    assert (signature.compute(tampered, secret) == signed['message_signature']
            ) == utils.verify_signature(tampered, secret)


# Any JSON value a guest can make us carry: every code point including lone
# surrogates (qemu-ga's JSON may escape them, "\ud800"), NaN and infinities
# (json.loads takes them), integers beyond 64 bits, deep nesting.
_any_text = st.text(alphabet=st.characters(min_codepoint=0,
                                           max_codepoint=0x10FFFF),
                    max_size=8)
_any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _any_text,
    lambda inner: (st.lists(inner, max_size=4)
                   | st.dictionaries(_any_text, inner, max_size=4)),
    max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(message=st.dictionaries(_any_text, _any_json, max_size=6),
       secret=st.text(min_size=1, max_size=8))
def test_any_json_signs_like_ceilometer_or_fails_like_it(message, secret):
    """Ours equals Ceilometer's signature, or raises what Ceilometer raises.

    A lone surrogate makes both raise UnicodeEncodeError: keeping such text
    out of samples (or mending it) is the sample builder's job, before
    signing (issue 9 row 1), not the signature's, which must stay
    bit-for-bit Ceilometer's.
    """
    from ceilometer.publisher import utils

    try:
        theirs = utils.compute_signature(message, secret)
    except Exception as exc:  # the property: the same exception type
        with pytest.raises(type(exc)):
            signature.compute(message, secret)
        return
    assert signature.compute(message, secret) == theirs


@pytest.mark.parametrize('message', [
    # Only the top-level pair named message_signature is skipped: a nested
    # one, or a top-level dict of that name (flattened to
    # 'message_signature:...'), is signed.
    {'a': 1, 'meta': {'message_signature': 'x'}},
    {'message_signature': {'inner': 'x'}, 'b': [1, 'y']},
    {'message_signature': 'x', 'b': {'c': {'d': ('e', b'f')}}},
])
def test_signature_key_quirks_same_as_ceilometer(message):
    from ceilometer.publisher import utils

    assert (signature.compute(message, SECRET)
            == utils.compute_signature(message, SECRET))


@settings(max_examples=200, deadline=None)
@given(secrets=st.lists(st.text(min_size=1, max_size=8), min_size=6,
                        max_size=6), message=_messages)
def test_many_secrets_in_turn_same_as_ceilometer(secrets, message):
    # More secrets than the keyed-HMAC cache holds, and each used twice: a
    # cached key must never sign with another secret's state.
    from ceilometer.publisher import utils

    for secret in secrets + secrets:
        assert (signature.compute(message, secret)
                == utils.compute_signature(message, secret))


@settings(max_examples=400, deadline=None)
@given(shared=st.dictionaries(_any_text, _any_json, max_size=6),
       own=st.dictionaries(_any_text, _any_json, max_size=3),
       top=st.dictionaries(_any_text, _any_json, max_size=4),
       overrides=st.sets(_any_text, max_size=2),
       secret=st.text(min_size=1, max_size=8))
def test_shared_metadata_signs_like_ceilometer_or_fails_like_it(
        shared, own, top, overrides, secret):
    """The per-guest shortcut never changes a signature.

    The message's metadata is the shared dict's values (the same objects)
    plus pairs of its own, some of which replace shared ones -- as
    ``sample_factory.build_samples`` makes them -- and anything at the top.
    """
    from ceilometer.publisher import utils

    metadata = dict(shared)
    metadata.update(own)
    for name in overrides:
        if name in metadata:
            metadata[name] = [metadata[name]]   # equal-looking, not the same
    message = dict(top, resource_metadata=metadata)
    try:
        theirs = utils.compute_signature(message, secret)
    except Exception as exc:  # the property: the same exception type
        with pytest.raises(type(exc)):
            signature.compute(message, secret,
                              signature.SharedMetadata(shared))
        return
    try:
        texts = signature.SharedMetadata(shared)
    except UnicodeEncodeError:
        # Text UTF-8 cannot carry that the message no longer holds
        # (replaced by its own pair): refusing it early is stricter than
        # Ceilometer, never different for a sample that builds from it.
        return
    assert signature.compute(message, secret, texts) == theirs


def test_shared_metadata_is_used_only_for_the_same_value():
    shared = {'flavor': {'id': '1', 'name': 'm1'}, 'os_id': 'debian'}
    texts = signature.SharedMetadata(shared)
    same = {'resource_metadata': dict(shared, collected_by='native')}
    other = {'resource_metadata': dict(shared, os_id='ubuntu')}
    for message in (same, other):
        assert (signature.compute(message, SECRET, texts)
                == signature.compute(message, SECRET))
