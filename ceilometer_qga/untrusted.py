"""Untrusted text from a guest made safe to log, store and publish.

A leaf module (standard library only): the agent client (:mod:`ceilometer_qga.
qga`), the collectors and the sample factory all use it, and it imports
none of them.
"""

from __future__ import annotations

import re
from typing import Any

#: Longest item (mountpoint, disk, interface name) and metadata string kept.
MAX_NAME = 255
#: How much of a rejected value is quoted in a reason.
_SHOWN = 60

#: Control characters have no business in a resource id or a log line.
CONTROL = re.compile(r'[\x00-\x1f\x7f]')
#: Lone UTF-16 surrogates: JSON can carry them escaped (``"vm\\ud800"``)
#: and Python decodes them, but they are not Unicode text: UTF-8 cannot
#: encode them (signing and the bus raise UnicodeEncodeError) and
#: PostgreSQL, behind Gnocchi, refuses them.
SURROGATE = re.compile('[\ud800-\udfff]')


def show(value: Any) -> str:
    """Return a short, printable rendering of an untrusted value."""
    text = repr(value)
    if len(text) > _SHOWN:
        text = text[:_SHOWN] + '...'
    return text


def clean_text(value: str) -> str:
    """``value`` with every lone surrogate replaced by U+FFFD.

    Free text (host name, OS name, an agent's error message) keeps what is
    readable; the result is always valid UTF-8, which is what Ceilometer's
    notification agent, its signature and Gnocchi's database accept.
    """
    return SURROGATE.sub('\ufffd', value)


def text(value: Any) -> str | None:
    """Return a metadata string cut to :data:`MAX_NAME`, or None if not str.

    Lone surrogates are replaced (:func:`clean_text`).
    """
    if not isinstance(value, str):
        return None
    return clean_text(value[:MAX_NAME])
