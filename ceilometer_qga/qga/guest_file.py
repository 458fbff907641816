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

"""Read a small file inside the guest with ``guest-file-open/read/close``.

The poller reads only allow-listed ``/proc`` files (``qga/policy.py``
refuses any other path), in chunks of 16 KiB, at most 256 KiB in all.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from ceilometer_qga.qga import errors
from ceilometer_qga.qga import transport as transport_mod

#: the commands a file read needs; an agent must offer all of them
FILE_COMMANDS = ('guest-file-open', 'guest-file-read', 'guest-file-close')
CHUNK_BYTES = 16384
MAX_FILE_BYTES = 256 * 1024


async def read_file(transport: transport_mod.Transport, path: str) -> str:
    """The text of ``path`` in the guest, bounded to 256 KiB.

    The handle is closed unless the agent became unreachable (then a close
    would only burn the budget again).

    :raises errors.QgaError: from any of the three commands; a
        :class:`errors.ProtocolError` for a malformed reply or a file over
        the bound
    """
    execute = transport.execute
    handle = await execute('guest-file-open', {'path': path, 'mode': 'r'})
    if not isinstance(handle, int) or isinstance(handle, bool):
        raise errors.ProtocolError(transport.guest, 'guest-file-open',
                                   'handle is not an integer')
    reachable = True
    try:
        data = bytearray()
        while True:
            chunk = await execute('guest-file-read',
                                  {'handle': handle, 'count': CHUNK_BYTES})
            if not _take_chunk(transport.guest, path, data, chunk):
                break
        return data.decode('utf-8', 'replace')
    except errors.UNREACHABLE:
        reachable = False
        raise
    finally:
        if reachable:
            try:
                await execute('guest-file-close', {'handle': handle})
            except errors.QgaError:
                pass  # the read result stands; the agent frees it on exit


def _take_chunk(guest: str, path: str, data: bytearray, chunk: Any) -> bool:
    """Add one ``guest-file-read`` reply to ``data``; True if more follows.

    :raises errors.ProtocolError: a malformed reply, or ``path`` over the
        bound
    """
    raw = _decode_chunk(guest, chunk)
    data += raw
    if len(data) > MAX_FILE_BYTES:
        raise errors.ProtocolError(guest, 'guest-file-read',
                                   '%s longer than %d bytes'
                                   % (path, MAX_FILE_BYTES))
    return bool(raw) and chunk.get('eof') is not True


def _decode_chunk(guest: str, chunk: Any) -> bytes:
    if not isinstance(chunk, dict) or not isinstance(chunk.get('buf-b64'),
                                                     str):
        raise errors.ProtocolError(guest, 'guest-file-read',
                                   'reply without buf-b64')
    try:
        return base64.b64decode(chunk['buf-b64'], validate=True)
    except (binascii.Error, ValueError):
        raise errors.ProtocolError(guest, 'guest-file-read',
                                   'buf-b64 is not base64')


def open_request(path: str) -> tuple[str, dict[str, Any]]:
    """The ``guest-file-open`` request of :func:`read_file`, for batches."""
    return 'guest-file-open', {'path': path, 'mode': 'r'}


async def read_opened(transport: transport_mod.Transport,
                      opened: dict[str, Any]) -> dict[str, Any]:
    """Finish :func:`read_file` for several files opened in one batch.

    The reads of all the files go out together, then their closes
    (:meth:`~ceilometer_qga.qga.transport.Transport.execute_batch`), so two
    ``/proc`` files cost three round trips instead of six; each file is
    bounded and closed exactly as :func:`read_file` does it.

    :param opened: path -> what its ``guest-file-open`` gave (a handle, or
        the error it failed with)
    :returns: path -> the file's text, or the
        :class:`~ceilometer_qga.qga.errors.QgaError` it failed with
    """
    results: dict[str, Any] = {}
    handles: dict[str, int] = {}
    for path, handle in opened.items():
        if isinstance(handle, errors.QgaError):
            results[path] = handle
        elif not isinstance(handle, int) or isinstance(handle, bool):
            results[path] = errors.ProtocolError(
                transport.guest, 'guest-file-open', 'handle is not an integer')
        else:
            handles[path] = handle
    data = {path: bytearray() for path in handles}
    reading = list(handles)
    unreachable = None
    while reading:
        replies = await transport.execute_batch(
            [('guest-file-read', {'handle': handles[path],
                                  'count': CHUNK_BYTES}) for path in reading])
        still = []
        for path, chunk in zip(reading, replies):
            try:
                if isinstance(chunk, errors.QgaError):
                    raise chunk
                more = _take_chunk(transport.guest, path, data[path], chunk)
            except errors.QgaError as exc:
                results[path] = exc
                if isinstance(exc, errors.UNREACHABLE):
                    unreachable = exc
                continue
            if more:
                still.append(path)
            else:
                results[path] = data[path].decode('utf-8', 'replace')
        reading = [] if unreachable else still
    if unreachable is not None:
        # No point in closing on an agent that cannot be reached.
        for path in handles:
            results.setdefault(path, unreachable)
        return results
    # Closing failures change nothing: the agent frees handles on exit.
    await transport.execute_batch([('guest-file-close', {'handle': handle})
                                   for handle in handles.values()])
    return results
