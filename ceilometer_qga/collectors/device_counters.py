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

"""Per-device cumulative counters: one engine for disks and interfaces.

Both ``guest-get-diskstats`` and ``guest-network-get-interfaces`` answer a
list of devices, each with a name and an object of counters, and their
``/proc`` fallbacks (``/proc/diskstats``, ``/proc/net/dev``) are turned into
the same list by :func:`proc_table`.  A
:class:`DeviceCounterCollector` subclass only declares which member holds
the counters, which counters become which meters, the default of its
``exclude`` option (in its own group) and the per-device metadata; the checks (names, duplicates,
exclusion before the ``max_items`` cap, one bad counter dropping only its
meter) are written once, here.
"""

from __future__ import annotations

from typing import Any, ClassVar

from oslo_config import cfg

from ceilometer_qga.collectors import base
from ceilometer_qga.collectors import checks
from ceilometer_qga import plugins


def exclude_opt(default: str, deprecated_name: str, what: str) -> cfg.Opt:
    """The ``exclude`` option of a device collector's own group.

    It was ``[qga_polling] <deprecated_name>``, which is still read.
    """
    return cfg.StrOpt(
        'exclude', default=default,
        deprecated_opts=[cfg.DeprecatedOpt(deprecated_name,
                                           group='qga_polling')],
        help='Regular expression: guest %s whose name matches are not '
             'reported. Empty: report every one.' % what)


class DeviceCounterCollector(base.Collector):
    """Base class of collectors of per-device cumulative counters."""

    #: the word for one device in messages: ``disk``, ``interface``
    device: ClassVar[str]
    #: the member of each entry that holds the counters
    stats_member: ClassVar[str]
    #: True: entries without that member are skipped quietly (old agents,
    #: interfaces without an address); False: reported as dropped
    stats_optional: ClassVar[bool] = False
    #: the meters' scope
    scope: ClassVar[str]
    #: (meter, counter key, multiplier, unit)
    counters: ClassVar[tuple[tuple[str, str, int, str], ...]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if 'counters' in cls.__dict__:
            cls.meters = tuple(
                base.Meter(meter, base.CUMULATIVE, unit, cls.scope)
                for meter, _key, _mult, unit in cls.counters)

    def __init__(self, conf: cfg.ConfigOpts, opts: Any = None) -> None:
        super().__init__(conf, opts)
        self._exclude = checks.exclusion(
            self.opts.exclude, '[%s] exclude' % plugins.group_name(
                self.name, base.GROUP_SUFFIX))

    def metadata(self, name: str, entry: dict[str, Any]) -> dict[str, Any]:
        """Resource metadata of one device (override to add to it)."""
        return {}

    def parse(self, reply: Any) -> base.ParseResult:
        """Readings for every device not excluded, up to ``max_items``.

        :raises base.BadReply: the reply is not a list
        """
        return self.parse_entries(checks.entries(reply, self.command))

    def parse_entries(self, entries: list[Any]) -> base.ParseResult:
        """Readings from a list of ``{name, <stats_member>: {...}}`` entries.

        The native reply is such a list; the ``/proc`` fallbacks build the
        same list from the file, so both go through the same checks.
        """
        result = base.ParseResult()
        kind = self.device
        devices: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        seen: set[str] = set()
        for index, entry in enumerate(entries):
            try:
                if not isinstance(entry, dict):
                    raise checks.Nonsense('%s #%d is not an object (%s)'
                                          % (kind, index, checks.show(entry)))
                stats = entry.get(self.stats_member)
                if stats is None and self.stats_optional:
                    continue
                name = checks.name(entry.get('name'),
                                   'name of %s #%d' % (kind, index))
                if checks.is_excluded(self._exclude, name):
                    continue
                if name in seen:
                    raise checks.Nonsense('%s %r is listed twice'
                                          % (kind, name))
                seen.add(name)
                if not isinstance(stats, dict):
                    raise checks.Nonsense(
                        '%s %r has no %s object (%s)'
                        % (kind, name, self.stats_member, checks.show(stats)))
            except checks.Nonsense as exc:
                result.dropped.append(str(exc))
                continue
            devices.append((name, stats, self.metadata(name, entry)))
        for name, stats, metadata in checks.cap(
                devices, self.conf.qga_polling.max_items, kind + 's',
                result.dropped):
            for meter, key, multiplier, _unit in self.counters:
                try:
                    value = checks.count(stats.get(key),
                                         '%s %r %s' % (kind, name, key))
                    if multiplier != 1:
                        value = checks.count(value * multiplier, '%s %r %s'
                                             % (kind, name, meter))
                except checks.Nonsense as exc:
                    result.dropped.append(str(exc))
                    continue
                result.readings.append(
                    base.Reading(meter, value, name, dict(metadata)))
        return result


def proc_table(text: Any, path: str, fields: tuple[tuple[str, int], ...],
               min_numbers: int, stats_member: str,
               name_end: str | None = None,
               name_column: int = 0) -> list[dict[str, Any]]:
    """Entries ``{name, stats_member: {key: int}}`` from a /proc table.

    Each line is a device: its name, then whitespace-separated decimal
    counters.  ``name_end`` (``':'`` in ``/proc/net/dev``) ends the name;
    otherwise the name is column ``name_column`` and the counters follow
    it.  Lines that do not fit (headers, too few numbers, a word that is
    not a count) are left out whole: a half-read line would give a counter
    that looks like a reset.

    :param fields: ``(key, position among the counters)``
    :raises base.BadReply: not text
    """
    if not isinstance(text, str):
        raise base.BadReply('%s content is not text' % path)
    entries = []
    for line in text.splitlines():
        if name_end is not None:
            name, sep, rest = line.partition(name_end)
            if not sep:
                continue
            name, words = name.strip(), rest.split()
        else:
            words = line.split()
            if len(words) <= name_column:
                continue
            name, words = words[name_column], words[name_column + 1:]
        if len(words) < min_numbers or not all(
                w.isascii() and w.isdigit() and len(w) <= 20 for w in words):
            continue
        entries.append({'name': name, stats_member: {
            key: int(words[pos]) for key, pos in fields}})
    return entries
