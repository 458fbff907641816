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

from collections.abc import Mapping
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


def _signed_text(message: Mapping[Any, Any], prefix: str,
                 out: list[str]) -> None:
    """Append Ceilometer's ``recursive_keypairs`` names and values as text.

    ``prefix`` is ``''`` at the top level, where Ceilometer takes
    ``str(name)``, and ``'outer:'`` below it, where it formats the name
    into ``f'{name}:{subname}'``.
    """
    for name, value in sorted(message.items()):
        _pair_text(name, value, prefix, out)


def _pair_text(name: Any, value: Any, prefix: str, out: list[str]) -> None:
    """Append the text of one pair (a dict value: its pairs, recursively)."""
    full = f'{prefix}{name}' if prefix else str(name)
    if isinstance(value, dict):
        _signed_text(value, full + _SEPARATOR, out)
        return
    # Only a top-level pair can be named message_signature: every nested
    # name has a separator in it.
    if full == SIGNATURE_KEY and not prefix:
        return
    out.append(full)
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, (tuple, list)):
        out.append(str(_swap_text_and_bytes(value)))
    else:
        out.append(str(value))


class SharedMetadata:
    """The signed text of metadata that many messages of one guest carry.

    Every sample of a guest carries the instance's metadata (uuid, names,
    flavor, host, OS facts: about 15 pairs) plus one to four pairs of its
    own, and building the text of those 15 pairs again for each of its
    25-odd samples was most of the cost of signing.  This keeps each pair's
    text, computed once, beside the value it was computed from;
    :func:`compute` uses it for a pair of ``message[key]`` whose value *is*
    (identity, not equality) that value, and computes every other pair as
    usual, so the signature is Ceilometer's whatever the message holds.

    The values must not be changed while this is in use (messages built
    from them are signed, and a signed message is never changed either).

    :param metadata: the shared dict, e.g. the instance's metadata
    :param key: the message key under which messages carry it
    :raises TypeError, UnicodeEncodeError: as :func:`compute` would
    """

    def __init__(self, metadata: Mapping[str, Any],
                 key: str = 'resource_metadata') -> None:
        self.key = key
        prefix = key + _SEPARATOR
        self._texts: dict[Any, tuple[Any, str]] = {}
        for name, value in metadata.items():
            parts: list[str] = []
            _pair_text(name, value, prefix, parts)
            text = ''.join(parts)
            # Ceilometer would fail on it at the end; fail here, as early.
            text.encode('utf-8')
            self._texts[name] = (value, text)

    def append(self, metadata: Mapping[Any, Any], out: list[str]) -> None:
        """Append the text of ``message[key]`` (``metadata``), reusing pairs."""
        prefix = self.key + _SEPARATOR
        texts = self._texts
        append = out.append
        for name, value in sorted(metadata.items()):
            known = texts.get(name)
            if known is not None and known[0] is value:
                append(known[1])
            elif type(value) is str and type(name) is str:
                append(prefix + name)
                append(value)
            else:
                _pair_text(name, value, prefix, out)


def compute(message: Mapping[str, Any], secret: str | bytes | None,
            shared: SharedMetadata | None = None) -> str:
    """Return the hex HMAC-SHA256 signature of a sample dict.

    Same result as ``ceilometer.publisher.utils.compute_signature`` for the
    same message and secret (see the module docstring for the algorithm).
    Ceilometer feeds each name and value to the HMAC in turn; this feeds
    their concatenation at once, which is the same input to the hash.

    :param message: the sample dict; a ``message_signature`` key in it is
        ignored.
    :param secret: ``[publisher] telemetry_secret``; empty or ``None``
        disables signing.
    :param shared: texts of metadata pairs the message shares with others
        (:class:`SharedMetadata`): a shortcut, never a different result
    :returns: the hex digest, or ``''`` when there is no secret.
    :raises TypeError: when keys at one level cannot be sorted together
        (Ceilometer raises the same).
    :raises UnicodeEncodeError: when a name or value is text UTF-8 cannot
        carry (a lone surrogate), as Ceilometer raises.
    """
    if not secret:
        return ''
    if isinstance(secret, str):
        secret = secret.encode('utf-8')
    parts: list[str] = []
    if shared is None:
        _signed_text(message, '', parts)
    else:
        append = parts.append
        for name, value in sorted(message.items()):
            kind = type(value)
            if kind is str and type(name) is str and name != SIGNATURE_KEY:
                # Most top-level pairs: text named by text, as is.
                append(name)
                append(value)
            elif value is None and type(name) is str:
                append(name)
                append('None')
            elif name == shared.key and isinstance(value, dict):
                shared.append(value, parts)
            else:
                _pair_text(name, value, '', parts)
    # One-shot HMAC in OpenSSL: no Python HMAC object per sample.
    return hmac.digest(secret, ''.join(parts).encode('utf-8'),
                       'sha256').hex()
