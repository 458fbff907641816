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

"""Per-instance opt-out: ``qga:monitor=false`` on the flavor or the image.

The flavor extra spec is read from ``instance.flavor.extra_specs``.  The
image property is read from ``instance.system_metadata``, where Nova keeps
every property of the boot image under the ``image_`` prefix: the
``ImageMeta`` object handed to the driver keeps only the properties Nova
knows, so it never carries ``qga:monitor``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from oslo_utils import strutils

KEY = 'qga:monitor'
_IMAGE_PROPERTY = 'image_' + KEY


@dataclasses.dataclass(frozen=True)
class OptOut:
    """What the instance asks for, and what could not be understood."""

    #: where a false value was found ('flavor extra spec', 'image property')
    opted_out_by: tuple[str, ...] = ()
    #: one message per value that is not a boolean
    errors: tuple[str, ...] = ()

    @property
    def opted_out(self) -> bool:
        """True when the flavor or the image says ``qga:monitor=false``."""
        return bool(self.opted_out_by)


def resolve(instance: Any) -> OptOut:
    """Read ``qga:monitor`` from the instance's flavor and image.

    Either source set to false opts the instance out.  A value that is not
    a boolean is reported in :attr:`OptOut.errors` and otherwise ignored,
    so the default (monitoring on) stays in force for that source.
    """
    opted_out_by = []
    errors = []
    for source, value in _values(instance):
        if value is None:
            continue
        try:
            wanted = strutils.bool_from_string(value, strict=True)
        except ValueError:
            errors.append('%s %s=%r is not a boolean' % (source, KEY, value))
            continue
        if not wanted:
            opted_out_by.append(source)
    return OptOut(tuple(opted_out_by), tuple(errors))


def _values(instance: Any) -> list[tuple[str, str | None]]:
    extra_specs = instance.flavor.extra_specs or {}
    system_metadata = instance.system_metadata or {}
    return [('flavor extra spec', extra_specs.get(KEY)),
            ('image property', system_metadata.get(_IMAGE_PROPERTY))]
