"""What one sweep learnt about one guest: the session's output.

A :class:`GuestReport` is filled by :class:`~ceilometer_qga.session.
GuestSession` and turned into samples by :mod:`ceilometer_qga.
sample_factory`; it depends on neither.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ceilometer_qga.collectors import base as collector_base
from ceilometer_qga.guest import Guest


@dataclasses.dataclass
class CollectorOutcome:
    """What one collector produced on one guest in one sweep."""

    name: str
    source: str  # 'native', 'fallback', 'skipped' or 'not_due' (schedule)
    result: collector_base.ParseResult
    reason: str | None = None
    #: the agent_state of the error that made it skip, if one did
    error_state: str | None = None


@dataclasses.dataclass
class GuestReport:
    """Everything one sweep learnt about one guest."""

    guest: Guest
    state: str = 'ok'
    error: str | None = None
    latency_ms: float | None = None
    facts: dict[str, Any] = dataclasses.field(default_factory=dict)
    outcomes: list[CollectorOutcome] = dataclasses.field(default_factory=list)

    @property
    def up(self) -> bool:
        """The agent answered guest-ping in this sweep."""
        return self.latency_ms is not None
