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

"""Removal of the retired monitoring files from ``injected_files``.

Nova hands the driver's ``spawn`` the server's ``personality`` files as
``(path, contents)`` pairs; the driver writes them into the root disk (file
injection) or onto the config drive.  The old in-guest monitoring shipped
that way; those files are dropped here before the driver sees them.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence
import fnmatch
import posixpath

InjectedFile = tuple[str, bytes]


def normalise_path(path: str) -> str:
    """The absolute, normalised guest path a file would be written to.

    Matching is done on this form so that ``etc//vm_monitor/./x`` or a
    relative path cannot slip past a pattern.
    """
    return posixpath.normpath('/' + path.lstrip('/'))


def split_injected_files(
        files: Iterable[InjectedFile], patterns: Sequence[str],
) -> tuple[list[InjectedFile], list[str]]:
    """Split ``files`` into those kept and the paths of those dropped.

    A file is dropped when its normalised path matches one of ``patterns``
    (:func:`fnmatch.fnmatchcase`, so ``*`` matches ``/`` as well).  The
    order of the kept files is preserved.
    """
    kept: list[InjectedFile] = []
    dropped: list[str] = []
    for path, contents in files:
        normal = normalise_path(path)
        if any(fnmatch.fnmatchcase(normal, p) for p in patterns):
            dropped.append(path)
        else:
            kept.append((path, contents))
    return kept, dropped
