"""Fixtures of the discovery tests: a fresh config, a test-driver libvirt."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import libvirt
from oslo_config import cfg
import pytest

from ceilometer_qga import conf as qga_conf


@pytest.fixture
def make_conf() -> Callable[..., cfg.ConfigOpts]:
    """Return ``make(group={opt: value})`` -> a parsed, private ConfigOpts."""
    def make(**groups: dict) -> cfg.ConfigOpts:
        conf = cfg.ConfigOpts()
        qga_conf.register_opts(conf)
        conf([], project='qga-test', default_config_files=[],
             default_config_dirs=[])
        for group, values in groups.items():
            for name, value in values.items():
                conf.set_override(name, value, group=group)
        return conf
    return make


class Hypervisor:
    """libvirt's in-process ``test:///default``, with cleanup.

    The test driver's state lives as long as the process and is shared by
    every connection to ``test:///default`` in it, so the discovery's own
    read-only connection sees what :attr:`conn` defines.  It always holds
    the built-in running domain ``test``, which has no Nova metadata.
    """

    URI = 'test:///default'

    def __init__(self) -> None:
        libvirt.registerErrorHandler(lambda ctx, err: None, None)
        self.conn = libvirt.open(self.URI)
        self._domains: list = []

    def start(self, xml: str) -> libvirt.virDomain:
        """Define and start a persistent domain."""
        dom = self.conn.defineXML(xml)
        self._domains.append(dom)
        dom.create()
        return dom

    def define(self, xml: str) -> libvirt.virDomain:
        """Define a domain without starting it (shut off)."""
        dom = self.conn.defineXML(xml)
        self._domains.append(dom)
        return dom

    def start_transient(self, xml: str) -> libvirt.virDomain:
        """Start a transient domain: it vanishes when destroyed."""
        dom = self.conn.createXML(xml, 0)
        self._domains.append(dom)
        return dom

    def cleanup(self) -> None:
        """Destroy and undefine every domain this object made."""
        for dom in self._domains:
            for step in (dom.destroy, dom.undefine):
                try:
                    step()
                except libvirt.libvirtError:
                    # Not running, transient or already gone: nothing is
                    # left to undo for this step.
                    pass
        self.conn.close()


@pytest.fixture
def hypervisor() -> Iterator["Hypervisor"]:
    """A :class:`Hypervisor`, cleaned up even when the test fails."""
    hv = Hypervisor()
    try:
        yield hv
    finally:
        hv.cleanup()
