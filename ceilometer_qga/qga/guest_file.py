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

#: errors after which the agent is unreachable (no point in closing)
UNREACHABLE = errors.UNREACHABLE


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
            raw = _decode_chunk(transport.guest, chunk)
            data += raw
            if len(data) > MAX_FILE_BYTES:
                raise errors.ProtocolError(
                    transport.guest, 'guest-file-read',
                    '%s longer than %d bytes' % (path, MAX_FILE_BYTES))
            if not raw or chunk.get('eof') is True:
                break
        return data.decode('utf-8', 'replace')
    except UNREACHABLE:
        reachable = False
        raise
    finally:
        if reachable:
            try:
                await execute('guest-file-close', {'handle': handle})
            except errors.QgaError:
                pass  # the read result stands; the agent frees it on exit


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
