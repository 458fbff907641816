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

"""``file:///PATH``: samples as JSON lines, one signed sample dict per line.

URL: ``file:///ABSOLUTE/PATH[?max_bytes=N][&hold_off=S]``

* The path must be absolute (three slashes).  Its directory is created on
  the first write; the file is created with mode 0640 (samples name
  projects and users).
* ``max_bytes``: when the next batch would take the file over N bytes, the
  file is renamed to ``PATH.1`` (replacing the previous one) and a new one
  is started, like the ``max_bytes`` rotation of Ceilometer's file
  publisher with one backup.  A file only exceeds N when a single batch of
  :data:`BATCH_SIZE` samples does.  0 (the default) never rotates.
* ``hold_off``: seconds after a failed write during which publish() only
  buffers, default 0 (disks fail and recover without a network's costs).

Each batch is written with one ``write(2)`` on an ``O_APPEND`` descriptor,
so concurrent readers never see half a batch; a write that fails part-way
is cut back to the last whole batch, so the file never holds half a line.
Samples that cannot be written (full disk, missing permission, a directory
in the way) wait in the buffer like samples for an unreachable bus.
A file moved away by logrotate is noticed and a new one is started.
:meth:`flush` fsyncs the file.
"""

from __future__ import annotations

import os
import stat
from typing import Any
import urllib.parse

from oslo_config import cfg
from oslo_log import log as logging

from ceilometer_qga import publishers
from ceilometer_qga.publishers import buffer

LOG = logging.getLogger(__name__)

#: samples per write
BATCH_SIZE = 100
FILE_MODE = 0o640


class FilePublisher(buffer.BufferedPublisher):
    """Samples appended to a local file, one JSON object per line."""

    batch_size = BATCH_SIZE

    def __init__(self, conf: cfg.ConfigOpts, url: urllib.parse.SplitResult,
                 opts: Any = None) -> None:
        super().__init__(conf, url, opts)
        if url.netloc:
            raise publishers.url_error(
                url, 'a file URL takes no host: write file:///ABSOLUTE/PATH '
                     '(three slashes)')
        path = urllib.parse.unquote(url.path)
        if not path:
            raise publishers.url_error(
                url, 'the path is missing: write file:///ABSOLUTE/PATH')
        if not os.path.isabs(path) or path.endswith('/'):
            raise publishers.url_error(
                url, 'the path must be an absolute file name: write '
                     'file:///ABSOLUTE/PATH')
        params = publishers.query_params(url, ('max_bytes', 'hold_off'))
        self.max_bytes = publishers.int_param(url, params, 'max_bytes', 0,
                                              minimum=0)
        self.hold_off = publishers.float_param(url, params, 'hold_off', 0.0,
                                               minimum=0.0)
        self.path = os.path.normpath(path)
        self._fd: int | None = None

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        data = b''.join([self._encode(m) + b'\n' for m in batch])
        fd = self._open()
        info = os.fstat(fd)
        if (self.max_bytes and stat.S_ISREG(info.st_mode) and info.st_size
                and info.st_size + len(data) > self.max_bytes):
            self._rotate()
            fd = self._open()
            info = os.fstat(fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError:
            self._cut_back(fd, info)
            raise

    def _open(self) -> int:
        """The descriptor of the file at :attr:`path`, (re)opened if needed."""
        if self._fd is not None:
            try:
                current = os.stat(self.path)
                opened = os.fstat(self._fd)
                if (current.st_ino, current.st_dev) == (opened.st_ino,
                                                        opened.st_dev):
                    return self._fd
            except FileNotFoundError:
                pass
            # Moved or deleted (logrotate): start a new file at the path.
            self._close_fd()
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._fd = os.open(self.path,
                           os.O_WRONLY | os.O_APPEND | os.O_CREAT
                           | os.O_CLOEXEC, FILE_MODE)
        return self._fd

    def _rotate(self) -> None:
        self._close_fd()
        os.replace(self.path, self.path + '.1')
        LOG.info('Publisher %(pub)s rotated %(path)s to %(path)s.1',
                 {'pub': self.describe(), 'path': self.path})

    @staticmethod
    def _cut_back(fd: int, before: os.stat_result) -> None:
        # Remove the part of a batch a failed write left behind, so that the
        # file holds whole lines only and the retried batch is not doubled.
        if not stat.S_ISREG(before.st_mode):
            return
        try:
            os.ftruncate(fd, before.st_size)
        except OSError as exc:
            LOG.warning('Could not cut a partly written batch off: %s', exc)

    def _sync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def _release(self) -> None:
        self._close_fd()

    def _close_fd(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
