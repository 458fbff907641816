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

"""Property test of the bounded ``guest-file-*`` read loop (``qga/guest_file.py``).

The agent's replies are hypothesis-built values handed back by a
:class:`~ceilometer_qga.qga.transport.Transport` subclass that answers
from a script instead of a socket: the loop under test only sees
``execute`` results, and the real ``Transport.execute`` (with the
read-only policy check) runs in front of the script.  The framing below
it has its own properties (``test_framing_properties.py``).

Whatever the replies, ``read_file`` returns text within the size bound or
raises a ``QgaError``, sends only allow-listed commands, and closes the
handle it opened after a successful read.
"""

import asyncio
import base64

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from ceilometer_qga.qga import errors
from ceilometer_qga.qga import guest_file
from ceilometer_qga.qga import transport as transport_mod

_any_text = st.text(alphabet=st.characters(min_codepoint=0,
                                           max_codepoint=0x10FFFF),
                    max_size=12)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _any_text,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(_any_text, inner, max_size=3), max_leaves=8)
_chunks = st.one_of(
    _json,
    st.fixed_dictionaries(
        {'buf-b64': st.one_of(st.binary(max_size=200).map(
            lambda b: base64.b64encode(b).decode()), _any_text),
         'count': _json, 'eof': st.one_of(st.booleans(), _json)}),
)


class ScriptedTransport(transport_mod.Transport):
    """Answers guest-file-* from a list of replies (an exhausted list: EOF)."""

    def __init__(self, handle, replies):
        super().__init__('prop-guest', 1.0)
        self.handle = handle
        self.replies = list(replies)
        self.sent = []

    async def _execute(self, command, arguments, timeout):
        self.sent.append(command)
        if command == 'guest-file-open':
            return self.handle
        if command == 'guest-file-close':
            return {}
        if not self.replies:
            return {'buf-b64': '', 'count': 0, 'eof': True}
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def close(self):
        pass


@settings(max_examples=300, deadline=None)
@given(handle=_json, replies=st.lists(_chunks, max_size=6))
def test_any_replies_give_bounded_text_or_a_qga_error(handle, replies):
    transport = ScriptedTransport(handle, replies)
    try:
        text = asyncio.run(guest_file.read_file(transport, '/proc/meminfo'))
    except errors.QgaError:
        text = None
    if text is not None:
        assert isinstance(text, str)
        assert len(text.encode('utf-8', 'surrogatepass')) <= (
            guest_file.MAX_FILE_BYTES * 3)
        text.encode('utf-8')  # valid text, whatever the bytes were
    opened = isinstance(handle, int) and not isinstance(handle, bool)
    assert transport.sent[0] == 'guest-file-open'
    assert set(transport.sent) <= {'guest-file-open', 'guest-file-read',
                                   'guest-file-close'}
    if not opened:
        assert transport.sent == ['guest-file-open']
    elif text is not None:
        # read: the handle is released (after a malformed reply the agent
        # counts as unreachable, as the socket transport has reset it)
        assert transport.sent[-1] == 'guest-file-close'


def test_endless_file_is_cut_at_the_bound():
    chunk = {'buf-b64': base64.b64encode(b'x' * 16384).decode(),
             'count': 16384, 'eof': False}
    transport = ScriptedTransport(7, [chunk] * 100)
    try:
        asyncio.run(guest_file.read_file(transport, '/proc/stat'))
    except errors.ProtocolError as exc:
        assert 'longer than' in str(exc)
    else:
        raise AssertionError('no bound')
    reads = transport.sent.count('guest-file-read')
    assert reads == guest_file.MAX_FILE_BYTES // 16384 + 1


@settings(max_examples=300, deadline=None)
@given(handles=st.lists(_json, min_size=1, max_size=3),
       replies=st.lists(_chunks, max_size=8))
def test_files_read_together_give_bounded_text_or_an_error_each(handles,
                                                                replies):
    """``read_opened`` (the sweep's batched reads): the same bounds per file
    as ``read_file``, one result per file, closes unless unreachable.
    """
    transport = ScriptedTransport(None, replies)
    paths = ['/proc/meminfo', '/proc/loadavg', '/proc/stat'][:len(handles)]
    results = asyncio.run(guest_file.read_opened(
        transport, dict(zip(paths, handles))))
    assert set(results) == set(paths)
    for result in results.values():
        if isinstance(result, str):
            assert len(result.encode('utf-8')) <= guest_file.MAX_FILE_BYTES * 3
        else:
            assert isinstance(result, errors.QgaError)
    assert set(transport.sent) <= {'guest-file-read', 'guest-file-close'}
    valid = [p for p, h in zip(paths, handles)
             if isinstance(h, int) and not isinstance(h, bool)]
    # A bad handle is that file's error; a read that failed so that the
    # agent counts as unreachable ends it all, without closing.
    unreachable = any(isinstance(results[p], errors.UNREACHABLE)
                      for p in valid)
    closes = transport.sent.count('guest-file-close')
    assert closes == (0 if unreachable else len(valid))
    if closes:
        assert transport.sent[-closes:] == ['guest-file-close'] * closes
