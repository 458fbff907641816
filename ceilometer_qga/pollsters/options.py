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

"""Our options, registered on the configuration of Ceilometer's agent.

Operators then set ``[qga_polling]`` (and, for the libvirt discovery,
``[libvirt_discovery]``) in ``ceilometer.conf``, next to Ceilometer's own
sections.  ``[publisher] telemetry_secret`` is Ceilometer's option already
(ours has the same name and meaning): Ceilometer's stays.
"""

from __future__ import annotations

from ceilometer.compute.virt.libvirt import utils as libvirt_utils
from oslo_config import cfg

from ceilometer_qga import conf as qga_conf
from ceilometer_qga.discovery import libvirt as libvirt_discovery


def ceilometer_libvirt_uri(conf: cfg.ConfigOpts) -> str:
    """The URI Ceilometer's compute agent connects to.

    ``[DEFAULT] libvirt_uri``, else the one ``libvirt_type`` implies, as
    ``ceilometer.compute.virt.libvirt.utils.new_libvirt_connection`` does.
    """
    try:
        uri = conf.libvirt_uri
        virt_type = conf.libvirt_type
    except cfg.NoSuchOptError:
        return 'qemu:///system'
    return uri or libvirt_utils.LIBVIRT_PER_TYPE_URIS.get(
        virt_type, 'qemu:///system')


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register every ``ceilometer_qga`` option on ``conf``, once.

    Safe to call again, and on a configuration that was parsed already
    (oslo.config reads the values of late options from the parsed files).
    ``[libvirt_discovery] uri`` defaults to Ceilometer's libvirt URI, so
    that our discovery sees the domains Ceilometer's discovery sees.
    """
    for group, opts in qga_conf.list_opts():
        for opt in opts:
            try:
                conf.register_opt(opt, group=group)
            except cfg.DuplicateOptError:
                # Ceilometer's own [publisher] telemetry_secret: same name,
                # same meaning, different help text.  Keep Ceilometer's.
                pass
    conf.set_default('uri', ceilometer_libvirt_uri(conf),
                     group=libvirt_discovery.GROUP)
