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
