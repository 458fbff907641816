"""Console scripts of the poller (``qga-polling``, ``qga-probe``).

The concurrency module comes first: it selects oslo.service's backend
before any console script imports oslo.messaging or a plugin.
"""

from ceilometer_qga.cmd import concurrency  # noqa: F401  # isort:skip
