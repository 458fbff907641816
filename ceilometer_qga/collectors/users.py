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

"""Logged-in users, from ``guest-get-users``.

The agent lists one entry per session: ``{user, login-time}`` on Linux
(utmpx), plus ``domain`` on Windows.  ``guest.users`` counts distinct users,
so two ssh sessions of ``alice`` are one user and two sessions.  A Windows
user is named ``DOMAIN\\user``, since the same short name in two domains is
two people.

If any entry is malformed no reading is made: a count that silently left
someone out would be a made-up figure.
"""

from __future__ import annotations

from typing import Any

from ceilometer_qga.collectors import base
from ceilometer_qga.collectors import checks

USERS = 'guest.users'

#: most user names copied into the metadata
MAX_NAMES = 16


class UsersCollector(base.Collector):
    """guest.users: number of distinct logged-in users."""

    meters = (base.Meter(USERS, base.GAUGE, 'user'),)
    command = 'guest-get-users'
    # Logins come and go at any time (KubeVirt reads users every
    # 10 s); one cheap command.
    interval = 0

    def parse(self, reply: Any) -> base.ParseResult:
        """One reading, with the session count and some names as metadata.

        :raises base.BadReply: the reply is not a list
        """
        result = base.ParseResult()
        names: set[str] = set()
        sessions = checks.entries(reply, self.command)
        try:
            for index, entry in enumerate(sessions):
                names.add(_user(index, entry))
        except checks.Nonsense as exc:
            result.dropped.append('%s; no user count reported' % exc)
            return result
        metadata = {'sessions': len(sessions),
                    'user_names': sorted(names)[:MAX_NAMES]}
        result.readings.append(
            base.Reading(USERS, len(names), None, metadata))
        return result


def _user(index: int, entry: Any) -> str:
    """The user name of one session entry, ``DOMAIN\\user`` when known."""
    if not isinstance(entry, dict):
        raise checks.Nonsense('session #%d is not an object (%s)'
                              % (index, checks.show(entry)))
    user = checks.name(entry.get('user'), 'user of session #%d' % index)
    domain = entry.get('domain')
    if domain is None or domain == '':
        return user
    domain = checks.name(domain, 'domain of session #%d' % index)
    return checks.name('%s\\%s' % (domain, user),
                       'user of session #%d' % index)
