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

"""PublishWorker: submit never blocks, the queue is bounded, flush is honest.

The publisher here is a stand-in whose ``publish`` blocks until the test
releases it: the way a notifier sits on a hung broker (the real thing,
RabbitMQ behind a paused proxy, is in tests/functional/test_broker_faults.py).
"""

from __future__ import annotations

import threading
import time
import urllib.parse

from ceilometer_qga.publishers import base
from ceilometer_qga.publishers import worker as worker_mod


class Stuck(base.Publisher):
    """Delivers into ``self.got``, but only while ``self.open`` is set."""

    def __init__(self, conf):
        super().__init__(conf, urllib.parse.urlsplit('stuck://'))
        self.open = threading.Event()
        self.got: list[dict] = []

    def publish(self, messages):
        self.open.wait(10)
        self.got.extend(messages)

    def flush(self, timeout):
        return True


def msgs(start, count):
    return [{'message_id': str(i)} for i in range(start, start + count)]


def test_stuck_publisher_never_blocks_submit_and_drops_oldest(make_conf):
    pub = Stuck(make_conf())
    worker = worker_mod.PublishWorker(pub, capacity=100)
    try:
        worker.submit(msgs(0, 10))            # taken by the thread, stuck
        time.sleep(0.1)
        started = time.monotonic()
        for n in range(1, 31):
            worker.submit(msgs(n * 10, 10))   # 300 more: the queue holds 100
        assert time.monotonic() - started < 0.5
        assert worker.queued == 100 and worker.dropped == 200
        assert worker.flush(0.3) is False     # honest while stuck
        pub.open.set()
        assert worker.flush(5) is True
        ids = [int(m['message_id']) for m in pub.got]
        assert ids == list(range(10)) + list(range(210, 310))   # newest kept, in order
    finally:
        pub.open.set()
        worker.close(1)


def test_close_does_not_wait_for_a_publisher_stuck_for_good(make_conf):
    pub = Stuck(make_conf())
    worker = worker_mod.PublishWorker(pub, capacity=10)
    worker.submit(msgs(0, 1))
    time.sleep(0.1)
    started = time.monotonic()
    worker.close(0.2)
    assert time.monotonic() - started < 2
    pub.open.set()


class Slow(base.Publisher):
    """Healthy but not instant: each publish() takes a little while."""

    def __init__(self, conf):
        super().__init__(conf, urllib.parse.urlsplit('slow://'))
        self.got: list[dict] = []

    def publish(self, messages):
        time.sleep(0.05)
        self.got.extend(messages)

    def flush(self, timeout):
        return True


def test_a_sweep_larger_than_the_buffer_reaches_a_healthy_publisher(
        make_conf):
    # buffer_size bounds what is *kept* for an unreachable destination; a
    # sweep of 1,000 guests (about 25,000 samples) is larger than its
    # default (10,000), and used to lose 60% of its samples on the way to
    # a publisher that was working fine.
    pub = Slow(make_conf())
    worker = worker_mod.PublishWorker(pub, capacity=100)
    try:
        worker.submit(msgs(0, 250))
        assert worker.flush(5) is True
        assert worker.dropped == 0
        assert [int(m['message_id']) for m in pub.got] == list(range(250))
    finally:
        worker.close(1)


def test_a_backlog_beyond_the_buffer_drops_older_sweeps_not_the_newest(
        make_conf):
    pub = Stuck(make_conf())
    worker = worker_mod.PublishWorker(pub, capacity=100)
    try:
        worker.submit(msgs(0, 10))            # taken by the thread, stuck
        time.sleep(0.1)
        worker.submit(msgs(10, 250))          # a big sweep: kept whole
        assert worker.queued == 250 and worker.dropped == 0
        worker.submit(msgs(260, 40))          # the older sweep makes room
        assert worker.queued == 100 and worker.dropped == 190
        pub.open.set()
        assert worker.flush(5) is True
        ids = [int(m['message_id']) for m in pub.got]
        assert ids == list(range(10)) + list(range(200, 300))
    finally:
        pub.open.set()
        worker.close(1)


def test_a_delivered_sweep_is_not_kept_until_the_next(make_conf):
    # The delivery thread used to hold its last batch while it waited: a
    # sweep of 1,000 guests (some 30 MiB) stayed alive beside the next one.
    import gc
    import weakref

    class Sample(dict):
        pass

    pub = Slow(make_conf())
    worker = worker_mod.PublishWorker(pub, capacity=100)
    try:
        sample = Sample(message_id='1')
        ref = weakref.ref(sample)
        worker.submit([sample])
        assert worker.flush(5) is True
        del sample
        pub.got.clear()
        gc.collect()
        assert ref() is None
    finally:
        worker.close(1)
