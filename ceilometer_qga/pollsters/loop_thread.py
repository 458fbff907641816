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

"""One long-lived asyncio event loop on a thread of its own.

Ceilometer's polling agent is threaded: pollsters run in worker threads of
a ``ThreadPoolExecutor`` and return plain iterables.  Our sessions and
transports are asyncio objects whose streams belong to the loop that opened
them, and they live across polling cycles (open connections, cached
capabilities, back-off), so every coroutine must run on the same loop.
``asyncio.run()`` per cycle would give each cycle a new loop and strand the
streams of the previous one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
import concurrent.futures
import threading
from typing import Any, TypeVar

T = TypeVar('T')


class LoopThread:
    """An event loop running forever in a daemon thread.

    The thread is a daemon so that an agent which never calls :meth:`stop`
    (Ceilometer has no hook for it) still exits.
    """

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name,
                                        daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the thread runs (for call_soon_threadsafe)."""
        return self._loop

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop and wait for its result.

        :raises TimeoutError: it did not finish within ``timeout`` seconds;
            it is then cancelled (its ``finally`` blocks run on the loop).
        :raises Exception: whatever ``coro`` raised.
        """
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError('coroutine did not finish within %.1f s'
                               % timeout) from None

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop and join the thread (within ``timeout``)."""
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._loop.close()
