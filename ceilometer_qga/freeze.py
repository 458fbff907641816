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

"""A guest whose filesystems are frozen (a Nova quiesce), in one place.

While frozen, qemu-ga runs only the freeze-safe commands
(``ga_freeze_allowlist`` in QEMU 7.2's ``qga/main.c``) and refuses every
other ("has been disabled: the agent is in frozen state", mapped onto
:class:`~ceilometer_qga.qga.errors.AgentFrozen` by the transports); its
``guest-info`` then says the others are off until the thaw.  So a frozen
guest is alive, gives no data this sweep, and what ``guest-info`` said
during the freeze is not kept.  The rules:

* ``guest-fsfreeze-status`` is the first command of the sweep's batch
  (:mod:`ceilometer_qga.prefetch`; asked alone first on a transport that
  sends one command at a time);
* the guest is frozen if it says so, or if it cannot say and its
  capabilities look like a frozen agent's (:func:`looks_frozen`);
* capabilities read while frozen are re-read next sweep;
* frozen: every collector skipped with the ``frozen`` state; a collector
  refused as frozen after the status was read (the freeze began
  meanwhile) makes the guest ``frozen`` too.

The poller never sends ``guest-fsfreeze-freeze`` or ``-thaw`` (not on the
allow-list, :mod:`ceilometer_qga.qga.policy`).
"""

from __future__ import annotations

from typing import Any

from ceilometer_qga.collectors import base as collector_base
from ceilometer_qga.qga import capabilities as caps_mod
from ceilometer_qga.qga import errors
from ceilometer_qga.report import CollectorOutcome

#: the read-only status command, answered while frozen too
STATUS_COMMAND = 'guest-fsfreeze-status'
#: the ``agent_state`` of a frozen guest
STATE = errors.AgentFrozen.state
#: What qemu-ga still runs while the guest's filesystems are frozen
#: (``ga_freeze_allowlist`` in QEMU 7.2's ``qga/main.c``).
SAFE = frozenset({'guest-ping', 'guest-info', 'guest-sync',
                  'guest-sync-delimited', STATUS_COMMAND,
                  'guest-fsfreeze-thaw'})


def looks_frozen(caps: caps_mod.Capabilities) -> bool:
    """True if this is what a frozen agent lists: only the freeze-safe
    commands enabled, others disabled (see :data:`SAFE`).
    """
    return bool(caps.enabled) and caps.enabled <= SAFE and bool(
        caps.disabled - SAFE)


def judge(status: Any, caps: caps_mod.Capabilities) -> tuple[bool, bool]:
    """``(frozen, reread)`` from the status reply and the capabilities.

    :param status: the ``guest-fsfreeze-status`` result: 'frozen',
        'thawed', an error, or None when not asked
    :returns: whether the guest is frozen now, and whether the capabilities
        were read during a freeze (it began or ended just now, or the
        status command is blocked) and must be read again next sweep
    """
    reread = looks_frozen(caps)
    if status not in ('frozen', 'thawed'):
        status = 'frozen' if reread else None
    frozen = status == 'frozen'
    return frozen, reread or frozen


def skipped(collectors: list[collector_base.Collector]
            ) -> list[CollectorOutcome]:
    """Every collector's outcome on a frozen guest: skipped, ``frozen``."""
    return [CollectorOutcome(c.name, 'skipped', collector_base.ParseResult(),
                             'agent is frozen', STATE) for c in collectors]


def began_meanwhile(outcomes: list[CollectorOutcome]) -> bool:
    """Whether a collector was refused as frozen after the status read."""
    return any(o.error_state == STATE for o in outcomes)
