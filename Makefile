# The two commands of the README are `make demo` and `make test`; the rest
# are for developers.  Every target installs what it needs first
# (tools/install_deps.sh is quick and silent when nothing is missing).

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTEST := $(PY) -m pytest -q -p no:cacheprovider
LINT_PATHS := ceilometer_qga nova_qga tests tools devstack setup.py qga_monitor_build.py

.PHONY: deps rabbitmq postgresql mariadb demo test e2e guest-e2e bench soak fuzz genconfig docs lint clean distclean

deps:
	@bash tools/install_deps.sh

rabbitmq:
	@bash tools/start_rabbitmq.sh

# The indexer of the real Gnocchi of tests/functional/test_gnocchi.py.
postgresql:
	@bash tools/start_postgresql.sh

# Neutron's database in tests/e2e/test_nova_cloud.py.
mariadb:
	@bash tools/start_mariadb.sh

# Three real qemu-ga stand-in guests, two sweeps, a table of the samples.
demo: deps
	@$(PY) -m tools.demo

# The whole suite: unit, functional (real qemu-ga, RabbitMQ, libvirt, Gnocchi)
# and e2e.  Nova's functional harness runs in a process of its own, as Nova
# runs its functional tests: after tests/unit/test_gnocchi_resources.py in
# the same process (it imports Ceilometer and the real libvirt), one of its
# snapshot tests fails.  The 25 slowest tests are listed at the end.
test: deps rabbitmq postgresql mariadb lint
	$(PYTEST) tests/functional/nova
	$(PYTEST) --durations=25 --ignore=tests/functional/nova

# Only the tests that boot real virtual machines under TCG.
e2e: deps
	$(PYTEST) tests/e2e

# Only the guest side (guest/) in a real Debian 12 guest: the image built
# with mmdebstrap (cached), the cloud-init and diskimage-builder routes.
guest-e2e: deps
	$(PYTEST) tests/e2e/test_guest_side.py

# Fleet-scale table against two baselines, with a profile (~7 min).
bench: deps rabbitmq
	$(PY) -m tests.bench.bench --profile

# A mixed fleet (real qemu-ga and hostile fakes) polled by the qga-polling
# service for SOAK_SECONDS (600) at a 1 s interval, publishing through a
# proxy that cuts the broker twice; prints sweeps, samples produced,
# delivered, lost, duplicated, RSS and fds.  Not part of `make test`.
soak: deps rabbitmq
	$(PY) -m tests.bench.soak

# The socket transport's framing under atheris for FUZZ_SECONDS (120); a
# crash is saved in build/fuzz/ and becomes a test.  Not part of `make test`.
fuzz: deps
	@$(VENV)/bin/pip install -q -r fuzz-requirements.txt
	$(PY) -m tests.unit.qga.fuzz_framing

genconfig: deps
	$(VENV)/bin/oslo-config-generator --config-file etc/oslo-config-generator/qga-polling.conf
	$(VENV)/bin/oslo-config-generator --config-file etc/oslo-config-generator/nova-qga.conf

# The documentation and the release notes, as tox -e docs and -e
# releasenotes build them (warnings are errors).
docs: deps
	$(VENV)/bin/sphinx-build -W -b html doc/source doc/build/html
	$(VENV)/bin/sphinx-build -W -b html releasenotes/source releasenotes/build/html

# reno only when there are notes: `reno lint` fails on an empty tree.
lint: deps
	@if compgen -G 'releasenotes/notes/*.yaml' >/dev/null; then \
		$(VENV)/bin/reno -q lint; fi
	@$(VENV)/bin/flake8 $(LINT_PATHS)
	@shellcheck tools/*.sh .ci/run
	@shellcheck guest/root/usr/local/libexec/qga-monitor-start \
		guest/diskimage-builder/elements/qga-monitor/*.d/*
	@shellcheck -x devstack/plugin.sh devstack/settings tests/devstack/run.sh \
		tests/devstack/functions.sh tests/devstack/ceilometer-plugin.sh

clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis doc/build releasenotes/build
	find . \( -path ./$(VENV) -o -path ./.venv-gnocchi -o -path ./.venv-aetos -o -path ./.venv-aodh -o -path ./.venv-dib -o -path ./.venv-glance -o -path ./.venv-neutron \) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .venv-gnocchi .venv-aetos .venv-aodh .venv-dib .venv-glance .venv-neutron
