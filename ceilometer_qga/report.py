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

"""What one sweep learnt about one guest: the session's output.

A :class:`GuestReport` is filled by :class:`~ceilometer_qga.session.
GuestSession` (what the agent said, and how it was reached: channel,
transport kind, capabilities) and by the :class:`~ceilometer_qga.poller.
Poller` (its samples, unsigned); the publishing side (:mod:`ceilometer_qga.
pipeline`) signs and encodes them.  It depends on none of them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ceilometer_qga.collectors import base as collector_base
from ceilometer_qga.guest import Channel
from ceilometer_qga.guest import Guest
from ceilometer_qga.qga.capabilities import Capabilities
from ceilometer_qga.sample import Sample


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
    #: the channel the transport uses, None without a transport
    channel: Channel | None = None
    #: the transport's kind ('socket', 'libvirt'), None without one
    transport_kind: str | None = None
    #: why there is no transport (no usable channel), else None
    transport_reason: str | None = None
    #: what the agent offers, as last read (None before the first read)
    capabilities: Capabilities | None = None
    #: this guest's samples of the sweep, liveness first (unsigned)
    samples: list[Sample] = dataclasses.field(default_factory=list)
    #: the metadata every one of ``samples`` shares (signing uses it)
    instance_metadata: dict[str, Any] = dataclasses.field(
        default_factory=dict)

    @property
    def up(self) -> bool:
        """The agent answered guest-ping in this sweep."""
        return self.latency_ms is not None
