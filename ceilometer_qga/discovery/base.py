"""The discovery contract (entry points ``ceilometer_qga.discovery``).

A discovery plugin answers one question per sweep: which guests run on this
host right now, with which guest-agent channels.  ``[qga_polling]
discovery`` names the plugin.

Contract:

* :meth:`discover` returns a fresh list of
  :class:`~ceilometer_qga.guest.Guest` on every call: the active guests,
  with ``metadata['state']`` set to the power state in Ceilometer's words
  (``running``, ``paused``...; absent = unknown).  When the source cannot be
  read at all it raises :class:`~ceilometer_qga.discovery.DiscoveryError`,
  so that "no guests" and "cannot tell" stay different.
* It may block (libvirt calls); the poller calls it from a worker thread.
* A guest that disappears while being inspected is skipped, not an error.
* Configuration errors raise ``ValueError`` naming the option.
"""

from __future__ import annotations

import abc

from oslo_config import cfg

from ceilometer_qga.guest import Guest


class Discovery(abc.ABC):
    """Base class of every discovery plugin."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf

    @abc.abstractmethod
    def discover(self) -> list[Guest]:
        """Return the guests to poll now."""

    def close(self) -> None:
        """Release connections (libvirt); default: nothing to do."""
