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

"""Sanity checks for values that come out of an untrusted guest.

Every collector parses JSON (or /proc text) written by the guest, so every
number and every name in it may be anything: a string, a bool, NaN, a
negative counter, a 2**80 "byte count", a 10 kB interface name.  The checks
here turn such a value into either a usable Python value or a
:class:`Nonsense` exception whose message is the human reason that goes into
``ParseResult.dropped``.  They are pure and cheap.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable, TypeVar

from ceilometer_qga.collectors import base
# Re-exported: the collectors' checks and the text helpers in one name.
from ceilometer_qga.untrusted import clean_text  # noqa: F401
from ceilometer_qga.untrusted import CONTROL
from ceilometer_qga.untrusted import MAX_NAME
from ceilometer_qga.untrusted import show
from ceilometer_qga.untrusted import SURROGATE
from ceilometer_qga.untrusted import text  # noqa: F401

#: Largest volume accepted: the largest signed 64-bit integer.  Ceilometer
#: and Gnocchi store volumes as 64-bit figures, so 2**63 itself does not
#: fit; anything above cannot be a real counter of a real guest.  The one
#: limit: collectors check their values with :func:`number`, and the sample
#: factory checks every reading again with :func:`valid_volume`.
MAX_VOLUME = 2 ** 63 - 1
T = TypeVar('T')


class Nonsense(ValueError):
    """One value makes no sense; ``str(exc)`` is the reason to report."""


def number(value: Any, what: str) -> int | float:
    """Return ``value`` if it is a finite number in ``0..MAX_VOLUME``.

    :param value: the untrusted value
    :param what: what the value is, for the reason (``"disk 'vda' read-ios"``)
    :raises Nonsense: missing, not a number (bools are not numbers here,
        although Python says they are), NaN/infinite, negative or absurd
    """
    if value is None:
        raise Nonsense('%s is missing' % what)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Nonsense('%s is not a number (%s)' % (what, show(value)))
    if isinstance(value, float) and not math.isfinite(value):
        raise Nonsense('%s is not finite (%s)' % (what, show(value)))
    if value < 0 or (isinstance(value, float)
                     and math.copysign(1.0, value) < 0):
        # -0.0 compares equal to 0 but is published as "-0.0"; no agent
        # computes a negative zero from real counters.
        raise Nonsense('%s is negative (%s)' % (what, show(value)))
    if value > MAX_VOLUME:
        raise Nonsense('%s is absurdly large (%s)' % (what, show(value)))
    return value


def valid_volume(value: Any) -> bool:
    """Whether :func:`number` accepts ``value`` (bool is not a number)."""
    try:
        number(value, 'volume')
    except Nonsense:
        return False
    return True


def count(value: Any, what: str) -> int:
    """Return ``value`` if it is an integer in ``0..MAX_VOLUME``.

    qga sends counters and byte sizes as JSON integers (``uint64``); a
    fractional one does not come from a real agent.

    :raises Nonsense: as :func:`number`, or not an integer
    """
    value = number(value, what)
    if not isinstance(value, int):
        raise Nonsense('%s is not an integer (%s)' % (what, show(value)))
    return value


def name(value: Any, what: str) -> str:
    """Return ``value`` if it can be an item: a short printable string.

    :raises Nonsense: not a string, empty, longer than :data:`MAX_NAME` or
        carrying control characters
    """
    if not isinstance(value, str):
        raise Nonsense('%s is not a string (%s)' % (what, show(value)))
    if not value:
        raise Nonsense('%s is empty' % what)
    if len(value) > MAX_NAME:
        raise Nonsense('%s is longer than %d characters (%s)'
                       % (what, MAX_NAME, show(value)))
    if CONTROL.search(value):
        raise Nonsense('%s has control characters (%s)' % (what, show(value)))
    if SURROGATE.search(value):
        # A name becomes a resource id: a replaced character could make
        # two names one, so the item is dropped rather than mended.
        raise Nonsense('%s is not valid Unicode (%s)' % (what, show(value)))
    return value


def entries(reply: Any, what: str) -> list[Any]:
    """Return ``reply`` if it is a list, else raise :class:`base.BadReply`."""
    if not isinstance(reply, list):
        raise base.BadReply('%s: expected a list, got %s'
                            % (what, type(reply).__name__))
    return reply


def cap(items: list[T], limit: int, what: str,
        dropped: list[str]) -> list[T]:
    """Keep the first ``limit`` items; record the others in ``dropped``.

    :param items: validated per-resource entries, in the guest's order
    :param limit: ``[qga_polling] max_items``
    :param what: plural noun for the reason (``"disks"``)
    """
    if len(items) <= limit:
        return items
    dropped.append('%d %s over [qga_polling] max_items=%d left out'
                   % (len(items) - limit, what, limit))
    return items[:limit]


def exclusion(pattern: str | None, option: str) -> re.Pattern[str] | None:
    """Compile an exclusion regex, the value of ``option``.

    An empty pattern means "exclude nothing" (an empty regex would match,
    and so exclude, every name).

    :param option: ``[group] name``, for the error
    :raises ValueError: the pattern is not a valid regular expression, so the
        collector refuses to load instead of silently reporting everything
    """
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError('%s = %r is not a valid regular expression: %s'
                         % (option, pattern, exc)) from exc


def is_excluded(pattern: re.Pattern[str] | None, item: str) -> bool:
    """True when ``item`` matches the exclusion ``pattern`` (re.search)."""
    return pattern is not None and pattern.search(item) is not None


def strings(values: Iterable[Any], limit: int) -> list[str]:
    """Up to ``limit`` valid metadata strings from ``values``, in order."""
    out: list[str] = []
    for value in values:
        if len(out) >= limit:
            break
        value = text(value)
        if value:
            out.append(value)
    return out
