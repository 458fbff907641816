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

"""Sweep observers: what consumes each sweep besides the publishers.

A publisher delivers a sweep's samples somewhere; an observer derives
something from the whole sweep -- the guests' reports and samples -- on the
poller's side: the agents' state changes as events, the Prometheus
exporter's series.  Observers are plugins in the entry-point namespace
``ceilometer_qga.observers`` (setup.cfg), like os-vif's plugins: every
installed one is built with the configuration and decides itself whether
it is on (:meth:`SweepObserver.enabled`), so enabling one is a setting of
its own group, not a list to keep in step.

Options follow the plugin contract of :mod:`ceilometer_qga.plugins`
(``CONFIG_OPTS``, registered by the loader, the group handed to
:meth:`SweepObserver.enabled` and the constructor), except for the group's
name: no option names an observer, so its entry point is named after its
group (``prometheus_exporter``, ``guest_agent_events``), the sections
operators set.

Contract: :meth:`SweepObserver.sweep_done` is called on the event loop
after every sweep, with the :class:`~ceilometer_qga.poller.SweepResult`
whose samples are also queued for the publishers (no second poll).  It
must return quickly (hand slow work to a thread of its own) and must not
keep the result.  An exception is logged and never stops the poller.
"""

from __future__ import annotations

import abc
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging
from stevedore import extension

from ceilometer_qga import plugins

LOG = logging.getLogger(__name__)

NAMESPACE = 'ceilometer_qga.observers'


class SweepObserver(abc.ABC):
    """Base class of an observer (see the module docstring).

    :param conf: the poller's configuration (``[qga_polling]``...)
    :param opts: this observer's own group (its :attr:`CONFIG_OPTS`)
    """

    #: this observer's options, in the group its entry point is named after
    CONFIG_OPTS: list[cfg.Opt] = []

    def __init__(self, conf: cfg.ConfigOpts, opts: Any) -> None:
        self.conf = conf
        self.opts = opts

    @classmethod
    def enabled(cls, opts: Any) -> bool:
        """Whether its own group ``opts`` turns this observer on: by
        default its ``enabled`` option (off unless an operator sets it).
        """
        return bool(opts.enabled)

    @abc.abstractmethod
    def sweep_done(self, result: Any) -> None:
        """Take one sweep's result (see the module docstring)."""

    def bind(self, poller: Any, loop: Any = None) -> None:
        """Meet the poller whose sweeps this observer gets.

        Called once after construction.  ``loop`` is the event loop the
        poller runs on when it is not the thread calling
        :meth:`sweep_done` (the Ceilometer pollsters), else None.  Most
        observers need neither.
        """

    def close(self) -> None:
        """Release what the observer holds; called once at shutdown."""


def load_observers(conf: cfg.ConfigOpts) -> list[SweepObserver]:
    """Every installed observer that ``conf`` enables, built."""
    manager = extension.ExtensionManager(NAMESPACE, invoke_on_load=False)
    observers = []
    for ext in sorted(manager, key=lambda e: e.name):
        opts = plugins.register(conf, plugins.group_name(ext.name, None),
                                ext.plugin.CONFIG_OPTS)
        if ext.plugin.enabled(opts):
            observers.append(ext.plugin(conf, opts))
    return observers


def notify(observers: list[SweepObserver], result: Any) -> None:
    """Hand ``result`` to each observer; one's failure is logged only."""
    for observer in observers:
        try:
            observer.sweep_done(result)
        except Exception:
            LOG.exception('Sweep observer %s failed',
                          type(observer).__name__)


def close(observers: list[SweepObserver]) -> None:
    """Close each observer; one's failure is logged only."""
    for observer in observers:
        try:
            observer.close()
        except Exception:
            LOG.exception('Closing sweep observer %s failed',
                          type(observer).__name__)
