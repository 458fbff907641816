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

"""The sweep-observer contract: enabled ones built, failures contained."""

from unittest import mock

from oslo_config import cfg
from stevedore import extension

from ceilometer_qga import observers


class Recorder(observers.SweepObserver):
    switched_on = True

    @classmethod
    def enabled(cls, opts):
        return cls.switched_on

    def __init__(self, conf, opts=None):
        super().__init__(conf, opts)
        self.seen = []
        self.closed = False

    def sweep_done(self, result):
        self.seen.append(result)

    def close(self):
        self.closed = True


class Off(Recorder):
    switched_on = False


class Broken(Recorder):
    def sweep_done(self, result):
        raise RuntimeError('boom')

    def close(self):
        raise RuntimeError('boom')


def _manager(*plugins):
    """A stevedore manager over in-test plugins (no entry points needed)."""
    exts = [extension.Extension(p.__name__.lower(), None, p, None)
            for p in plugins]
    return extension.ExtensionManager.make_test_instance(
        exts, observers.NAMESPACE)


def test_only_enabled_observers_are_built():
    installed = _manager(Recorder, Off)
    with mock.patch.object(extension, 'ExtensionManager', autospec=True,
                           return_value=installed):
        built = observers.load_observers(cfg.ConfigOpts())
    assert [type(o) for o in built] == [Recorder]


class Configured(Recorder):
    CONFIG_OPTS = [cfg.BoolOpt('enabled', default=True),
                   cfg.IntOpt('port', default=7)]

    @classmethod
    def enabled(cls, opts):
        return opts.enabled


def test_each_observer_gets_its_own_group():
    """Its CONFIG_OPTS registered in the group its entry point is named
    after, and that group handed to ``enabled`` and the constructor.
    """
    installed = _manager(Configured)
    conf = cfg.ConfigOpts()
    with mock.patch.object(extension, 'ExtensionManager', autospec=True,
                           return_value=installed):
        [built] = observers.load_observers(conf)
    assert built.opts.port == 7
    assert conf.configured.port == 7


def test_one_failing_observer_does_not_stop_the_others():
    conf = cfg.ConfigOpts()
    broken, recorder = Broken(conf), Recorder(conf)
    observers.notify([broken, recorder], 'sweep')
    observers.close([broken, recorder])
    assert recorder.seen == ['sweep']
    assert recorder.closed
