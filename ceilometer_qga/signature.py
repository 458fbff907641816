"""Message signatures, computed exactly as Ceilometer computes them.

Ceilometer signs every sample dict it puts on the bus with an HMAC-SHA256
keyed by ``[publisher] telemetry_secret``
(``ceilometer/publisher/utils.py``: ``compute_signature``,
``verify_signature``, ``recursive_keypairs``, ``decode_unicode``).  Nothing
in current Ceilometer checks the signature any more, but the field is part
of the wire format, and consumers outside Ceilometer may still check it, so
ours must be bit-for-bit the same.  Ceilometer is not a runtime dependency
of this package, hence this reimplementation; the unit tests compare it with
Ceilometer's own functions.

The algorithm, including its quirks:

* An empty (or ``None``) secret gives the empty signature ``''``.
* The message is walked in sorted key order.  A nested dict is flattened:
  its pairs are named ``outer:inner`` (recursively, again in sorted order),
  and an empty nested dict contributes nothing at all.
* A list or tuple value is not walked: it goes through ``decode_unicode``,
  which turns every ``str`` inside it into ``bytes`` (and every ``bytes``
  into ``str``), turns tuples into lists and re-creates dicts in sorted key
  order.  The value signed is ``str()`` of that, so ``['x']`` is signed as
  the text ``[b'x']``.
* The pair named ``message_signature`` is skipped, so a signed message can
  be verified in place.
* For every other pair, ``str(name)`` then ``str(value)`` are fed to the
  HMAC as UTF-8; the result is the hex digest.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping
import hashlib
import hmac
from typing import Any

SIGNATURE_KEY = 'message_signature'
_SEPARATOR = ':'


def _swap_text_and_bytes(value: Any) -> Any:
    """Ceilometer's ``decode_unicode``: str <-> bytes, deep, dicts sorted."""
    if isinstance(value, dict):
        return {_swap_text_and_bytes(key): _swap_text_and_bytes(item)
                for key, item in sorted(value.items())}
    if isinstance(value, (tuple, list)):
        return [_swap_text_and_bytes(item) for item in value]
    if isinstance(value, str):
        return value.encode('utf-8')
    if isinstance(value, bytes):
        return value.decode('utf-8')
    return value


def _keypairs(message: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """Ceilometer's ``recursive_keypairs``: (flattened name, value) pairs."""
    for name, value in sorted(message.items()):
        if isinstance(value, dict):
            for subname, subvalue in _keypairs(value):
                yield f'{name}{_SEPARATOR}{subname}', subvalue
        elif isinstance(value, (tuple, list)):
            yield name, _swap_text_and_bytes(value)
        else:
            yield name, value


def compute(message: Mapping[str, Any], secret: str | bytes | None) -> str:
    """Return the hex HMAC-SHA256 signature of a sample dict.

    Same result as ``ceilometer.publisher.utils.compute_signature`` for the
    same message and secret (see the module docstring for the algorithm).

    :param message: the sample dict; a ``message_signature`` key in it is
        ignored.
    :param secret: ``[publisher] telemetry_secret``; empty or ``None``
        disables signing.
    :returns: the hex digest, or ``''`` when there is no secret.
    :raises TypeError: when keys at one level cannot be sorted together
        (Ceilometer raises the same).
    """
    if not secret:
        return ''
    if isinstance(secret, str):
        secret = secret.encode('utf-8')
    digest = hmac.new(secret, b'', hashlib.sha256)
    for name, value in _keypairs(message):
        if name == SIGNATURE_KEY:
            continue
        digest.update(str(name).encode('utf-8'))
        digest.update(str(value).encode('utf-8'))
    return digest.hexdigest()
