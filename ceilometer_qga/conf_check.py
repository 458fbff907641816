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

"""Check every option of the poller before anything runs.

oslo.config checks a value only when it is first read, with a message that
names neither the section nor what would be accepted, and it lets ``nan``
through any ``min``/``max``.  :func:`check` reads every option of
:func:`ceilometer_qga.conf.list_opts` once, at start, so that a bad value
is one :class:`ConfigError` line naming the option and the accepted range
(``qga-polling`` exits 2 on it; the Ceilometer plugin disables itself
with it) instead of a traceback at the first sweep or every cycle.
"""

from __future__ import annotations

import math
from typing import Any

from oslo_config import cfg
from oslo_config import types

from ceilometer_qga import collectors
from ceilometer_qga import conf as conf_mod
from ceilometer_qga import plugins
from ceilometer_qga import schedule

#: options that name plugins, checked against the installed entry points
#: (option, entry-point namespace, what a plugin is)
PLUGIN_OPTIONS = (
    ('discovery', 'ceilometer_qga.discovery', 'discovery plugin'),
    ('collectors', 'ceilometer_qga.collectors', 'collector'),
)


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the option."""


def label(group: str, opt: cfg.Opt) -> str:
    """``[group] name``, as an operator finds it in the file.

    An option that moved also names where it was, which is still read
    (``[libvirt_transport] max_threads (formerly [libvirt_discovery]
    max_threads)``): the file may use either.
    """
    text = '[%s] %s' % (group, opt.name)
    old = ['[%s] %s' % (d.group or group, d.name or opt.name)
           for d in opt.deprecated_opts]
    if old:
        text += ' (formerly %s)' % ', '.join(old)
    return text


def accepted(opt: cfg.Opt) -> str:
    """What ``opt`` accepts, in words (``a number from 0.01 to 3600``)."""
    kind = opt.type
    if isinstance(kind, (types.Integer, types.Float)):
        noun = 'an integer' if isinstance(kind, types.Integer) else (
            'a finite number')
        low, high = kind.min, kind.max
        if low is not None and high is not None:
            return '%s from %s to %s' % (noun, low, high)
        if low is not None:
            return '%s >= %s' % (noun, low)
        if high is not None:
            return '%s <= %s' % (noun, high)
        return noun
    choices = getattr(kind, 'choices', None)
    if choices:
        return 'one of: %s' % ', '.join(str(c) for c in choices)
    if isinstance(kind, types.Boolean):
        return 'true or false'
    if isinstance(kind, types.Dict):
        return 'KEY:VALUE items separated by commas'
    return 'a valid %s' % type(kind).__name__.lower()


def _reason(exc: Exception) -> str:
    # oslo.config says "Value for option X from LocationInfo(...) is not
    # valid: REASON"; only REASON is news to the operator.
    text = str(exc)
    marker = 'is not valid: '
    return text.split(marker, 1)[1] if marker in text else text


def read(conf: cfg.ConfigOpts, group: str, opt: cfg.Opt) -> Any:
    """The value of one option, or :class:`ConfigError` naming it.

    :raises ConfigError: the value does not parse, is out of range, or is
        a non-finite float
    """
    try:
        section = conf if group == 'DEFAULT' else conf[group]
        value = section[opt.dest]
    except (ValueError, cfg.Error) as exc:
        raise ConfigError('%s: invalid value (%s); accepted: %s'
                          % (label(group, opt), _reason(exc),
                             accepted(opt))) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError('%s = %s: not a finite number; accepted: %s'
                          % (label(group, opt), value, accepted(opt)))
    return value


def collector_intervals(conf: cfg.ConfigOpts) -> ConfigError | None:
    """What is wrong with ``[qga_polling] collector_intervals``, if anything.

    Each name must be an installed collector (enabled or not) and each
    value a finite number of seconds >= 0.
    """
    option = '[%s] collector_intervals' % conf_mod.POLLING_GROUP
    value = conf[conf_mod.POLLING_GROUP].collector_intervals
    known = set(plugins.known_names(collectors.NAMESPACE))
    unknown = [name for name in value if name not in known]
    if unknown:
        return ConfigError(plugins.unknown_message(
            option, unknown, 'collector', collectors.NAMESPACE))
    try:
        schedule.overrides(value)
    except ValueError as exc:
        return ConfigError('%s = %s; accepted: COLLECTOR:SECONDS items, '
                           'SECONDS a finite number >= 0 (0: every sweep)'
                           % (option, exc))
    return None


def problems(conf: cfg.ConfigOpts
             ) -> list[tuple[str, cfg.Opt | None, ConfigError]]:
    """Every bad option of the poller registered on ``conf``.

    Also checks that the discovery and collector names are installed
    plugins (without loading them: that may need libvirt, which may be
    down at start), and the items of ``collector_intervals``.

    :returns: ``(group, option, error)`` for each bad value, in the order
        of :func:`~ceilometer_qga.conf.list_opts`; the option is None for
        an unknown plugin name
    """
    found: list[tuple[str, cfg.Opt | None, ConfigError]] = []
    for group, opts in conf_mod.list_opts():
        for opt in opts:
            try:
                read(conf, group, opt)
            except ConfigError as exc:
                found.append((group, opt, exc))
    bad = {(group, opt.name) for group, opt, _exc in found if opt}
    for name, namespace, kind in PLUGIN_OPTIONS:
        if (conf_mod.POLLING_GROUP, name) in bad:
            continue
        value = conf[conf_mod.POLLING_GROUP][name]
        names = [value] if isinstance(value, str) else list(value)
        known = set(plugins.known_names(namespace))
        unknown = [n for n in names if n not in known]
        if unknown:
            found.append((conf_mod.POLLING_GROUP, None, ConfigError(
                plugins.unknown_message(
                    '[%s] %s' % (conf_mod.POLLING_GROUP, name), unknown,
                    kind, namespace))))
    if (conf_mod.POLLING_GROUP, 'collector_intervals') not in bad:
        error = collector_intervals(conf)
        if error is not None:
            found.append((conf_mod.POLLING_GROUP, conf_mod.option(
                conf_mod.POLLING_GROUP, 'collector_intervals'), error))
    return found


def check(conf: cfg.ConfigOpts) -> None:
    """Read and check every option of the poller registered on ``conf``.

    :raises ConfigError: the first of :func:`problems`, naming the option
        and what it accepts
    """
    found = problems(conf)
    if found:
        raise found[0][2]
