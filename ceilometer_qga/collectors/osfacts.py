"""Instance-level facts about the guest OS, for ``resource_metadata``.

Not a collector: these pure functions turn the replies of
``guest-get-osinfo`` and ``guest-get-host-name`` into flat string dicts
that the engine merges into the metadata of every instance-level sample.
They never raise: a fact that cannot be read is simply absent.

``os_version`` is the machine-friendly ``version-id`` (``"12"``,
``"2019"``), not the display ``version`` (``"12 (bookworm)"``), which
``os_pretty_name`` already covers in spirit.
"""

from __future__ import annotations

from typing import Any

from ceilometer_qga.collectors import checks

#: metadata key for each guest-get-osinfo member
OSINFO_KEYS = (
    ('id', 'os_id'),
    ('name', 'os_name'),
    ('version-id', 'os_version'),
    ('pretty-name', 'os_pretty_name'),
    ('kernel-release', 'kernel_release'),
    ('kernel-version', 'kernel_version'),
    ('machine', 'machine'),
)


def parse_osinfo(reply: Any) -> dict[str, str]:
    """OS facts from a ``guest-get-osinfo`` reply; ``{}`` if unusable.

    Only non-empty strings are kept, each cut to 255 characters.
    """
    if not isinstance(reply, dict):
        return {}
    facts = {}
    for member, key in OSINFO_KEYS:
        value = checks.text(reply.get(member))
        if value:
            facts[key] = value
    return facts


def parse_hostname(reply: Any) -> dict[str, str]:
    """``{'guest_hostname': ...}`` from ``guest-get-host-name``, or ``{}``."""
    if not isinstance(reply, dict):
        return {}
    value = checks.text(reply.get('host-name'))
    return {'guest_hostname': value} if value else {}
