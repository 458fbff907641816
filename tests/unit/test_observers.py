"""The sweep-observer contract: enabled ones built, failures contained."""

from unittest import mock

from oslo_config import cfg
from stevedore import extension

from ceilometer_qga import observers


class Recorder(observers.SweepObserver):
    switched_on = True

    @classmethod
    def enabled(cls, conf):
        return cls.switched_on

    def __init__(self, conf):
        super().__init__(conf)
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
    with mock.patch.object(extension, 'ExtensionManager',
                           return_value=installed):
        built = observers.load_observers(cfg.ConfigOpts())
    assert [type(o) for o in built] == [Recorder]


def test_one_failing_observer_does_not_stop_the_others():
    conf = cfg.ConfigOpts()
    broken, recorder = Broken(conf), Recorder(conf)
    observers.notify([broken, recorder], 'sweep')
    observers.close([broken, recorder])
    assert recorder.seen == ['sweep']
    assert recorder.closed
