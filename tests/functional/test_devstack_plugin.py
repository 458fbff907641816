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

"""devstack/plugin.sh, run phase by phase under bash as devstack runs it.

devstack itself cannot run here (it builds a whole cloud), so
tests/devstack/run.sh runs the enabled plugins in DEVSTACK_PLUGINS order,
phase by phase, with tests/devstack/functions.sh standing in for devstack's
functions (each says which one it stands for and how it differs):

* devstack's own inc/ini-config and inc/meta-config: files are edited, and
  local.conf's ``[[post-config|...]]`` sections merged after the
  post-config phase, exactly as devstack does;
* Ceilometer's plugin's file writes in their phases
  (tests/devstack/ceilometer-plugin.sh): its conf dir at install, its
  ceilometer.conf and the copy of ``polling_all.yaml`` over polling.yaml at
  post-config, its compute agent at extra;
* ``setup_install``/``pip_install`` really install our wheel into real
  venvs (devstack's global venv, and Nova's and Ceilometer's venvs with
  ``USE_VENV=True``), where the driver and the pollsters are then loaded;
* ``add_user_to_group`` is devstack's usermod, for a real non-root stack
  user (``qga-stack``);
* ``run_process`` records (the e2e test
  ``test_devstack_socket_permissions.py`` runs the poller as devstack's
  systemd unit would);
* ``openstack`` stands in for the openstack client and Gnocchi.

What the plugin wrote is then read by the real consumers: nova.conf's
``[qga]`` with nova_qga's options, qga-polling.conf the way ``qga-polling``
parses it and its transport URLs by oslo.messaging, polling.yaml by
Ceilometer's ``PollingManager``, ceilometer.conf by Ceilometer's
``prepare_service`` with our options registered as Ceilometer's agent
registers them.
"""

from __future__ import annotations

import configparser
import grp
import json
import os
import pwd
import subprocess
import sys

from ceilometer.polling import manager as ceilometer_polling
from ceilometer.publisher import utils as publisher_utils
from ceilometer import service as ceilometer_service
from oslo_config import cfg
from oslo_log import log as logging
import oslo_messaging
import pytest
import yaml

from ceilometer_qga import conf as qga_conf
from ceilometer_qga.pollsters import options as ceilometer_options
from nova_qga import conf as nova_qga_conf
from tests.fixtures import install_envs
from tests.fixtures import libvirt_env
from tests.functional.test_config_samples import documented_options

pytestmark = [
    pytest.mark.functional,
    pytest.mark.skipif(os.geteuid() != 0,
                       reason='the plugin creates directories owned by '
                              'other users (sudo install -o/-g)'),
]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
RUN = os.path.join(ROOT, 'tests', 'devstack', 'run.sh')
SHELL_FILES = [os.path.join(ROOT, 'devstack', 'plugin.sh'),
               os.path.join(ROOT, 'devstack', 'settings'),
               RUN,
               os.path.join(ROOT, 'tests', 'devstack', 'functions.sh'),
               os.path.join(ROOT, 'tests', 'devstack', 'ceilometer-plugin.sh')]
POLLING_YAML_TOOL = os.path.join(ROOT, 'devstack', 'files', 'polling_yaml.py')
OUR_SOURCE = os.path.join(ROOT, 'etc', 'ceilometer', 'polling.yaml')
OUR_GNOCCHI = os.path.join(ROOT, 'etc', 'ceilometer',
                           'gnocchi_resources.yaml')
SAMPLE = os.path.join(ROOT, 'etc', 'qga-polling.conf.sample')
#: Ceilometer's own polling_all.yaml (data file of its wheel), which
#: devstack's Ceilometer plugin copies to /etc/ceilometer/polling.yaml.
POLLING_ALL = os.path.join(sys.prefix, 'etc', 'ceilometer',
                           'polling_all.yaml')

STACK = ['stack:pre-install', 'stack:install', 'stack:post-config',
         'start_nova_compute', 'stack:extra']
COMPUTE = ['n-cpu', 'n-api', 'n-cond', 'placement-api']
CEILOMETER = ['ceilometer-acompute', 'ceilometer-acentral',
              'ceilometer-anotification', 'gnocchi-api', 'gnocchi-metricd']
#: devstack's stack user: a real, non-root one.
STACK_USER = 'qga-stack'
#: QEMU's user and group in the qemu.conf of most tests (tests/fixtures/libvirt_env.py
#: makes sure both exist); "nogroup" stands in for the libvirt group.
QEMU_USER = 'libvirt-qemu'
QEMU_GROUP = 'kvm'
QEMU_CONF = 'user = "%s"\n# group = "nobody"\ngroup = "%s"\n' % (
    QEMU_USER, QEMU_GROUP)
LIBVIRT_GROUP = 'nogroup'
RABBIT = {'RABBIT_USERID': 'stackrabbit', 'RABBIT_PASSWORD': 'rabbitpw',
          'RABBIT_HOST': '192.0.2.10'}
#: some of Ceilometer's own compute meters
CEILOMETER_METERS = ('cpu', 'memory.usage', 'disk.device.read.bytes')
NEW_TYPES = {'instance_guest_filesystem', 'instance_guest_disk',
             'instance_guest_interface'}


def _meters() -> list[str]:
    with open(OUR_SOURCE) as src:
        return yaml.safe_load(src)['sources'][0]['meters']


@pytest.fixture(scope='module', autouse=True)
def stack_user() -> str:
    """The non-root stack user, and QEMU's user and groups, on this host."""
    libvirt_env.ensure_qemu_user()
    if subprocess.run(['getent', 'passwd', STACK_USER],
                      capture_output=True).returncode != 0:
        subprocess.run(['useradd', '--system', '--no-create-home',
                        '--shell', '/usr/sbin/nologin', STACK_USER],
                       check=True, capture_output=True, timeout=60)
    return STACK_USER


@pytest.fixture(scope='module')
def devstack_venv() -> install_envs.Env:
    """devstack's global venv (GLOBAL_VENV=True), where setup_install goes."""
    return install_envs.devstack_env()


class Host:
    """A temporary tree standing for one devstack host, and its variables."""

    def __init__(self, tmp, services, venv, local_conf='', plugins=None,
                 qemu_conf=QEMU_CONF, **localrc):
        self.tmp = tmp
        self.etc = tmp / 'etc'
        self.top_dir = tmp / 'devstack'
        self.top_dir.mkdir()
        (self.top_dir / 'local.conf').write_text(local_conf)
        self.nova_conf = self.etc / 'nova' / 'nova.conf'
        self.nova_cpu_conf = self.etc / 'nova' / 'nova-cpu.conf'
        self.ceilometer_dir = self.etc / 'ceilometer'
        self.ceilometer_conf = self.ceilometer_dir / 'ceilometer.conf'
        self.polling_yaml = self.ceilometer_dir / 'polling.yaml'
        self.conf_dir = self.etc / 'qga-monitor'
        self.qga_conf = self.conf_dir / 'qga-polling.conf'
        self.socket_dir = tmp / 'var' / 'lib' / 'libvirt' / 'qemu' / 'qga'
        self.qemu_conf = tmp / 'qemu.conf'
        if qemu_conf is not None:
            self.qemu_conf.write_text(qemu_conf)
            self.qemu_conf.chmod(0o600)
        self.venv = venv
        self.calls_file = tmp / 'calls'
        self.gnocchi_dir = tmp / 'gnocchi-resource-types'
        self.gnocchi_dir.mkdir()
        self.services = services
        if plugins is None:
            plugins = (['ceilometer'] if any(s.startswith('ceilometer-')
                                             for s in services) else [])
            plugins.append('qga-monitor')
        # What lib/nova has written before the plugins' post-config.
        self.nova_conf.parent.mkdir(parents=True)
        if 'n-cpu' in services:
            self.nova_conf.write_text(
                '[DEFAULT]\ncompute_driver = libvirt.LibvirtDriver\n'
                '\n[oslo_messaging_notifications]\ndriver = messagingv2\n')
        self.env = {
            'PATH': os.environ['PATH'],
            'HOME': str(tmp),
            'LANG': 'C.UTF-8',
            # stackrc, lib/nova, lib/rpc_backend, ceilometer's settings
            'TOP_DIR': str(self.top_dir),
            'DEST': str(tmp / 'opt' / 'stack'),
            'STACK_USER': STACK_USER,
            'ENABLED_SERVICES': ','.join(services),
            'DEVSTACK_PLUGINS': ','.join(plugins),
            'VIRT_DRIVER': 'libvirt',
            'LIBVIRT_GROUP': LIBVIRT_GROUP,
            'NOVA_CONF': str(self.nova_conf),
            'NOVA_CPU_CONF': str(self.nova_cpu_conf),
            'ENABLE_DEBUG_LOG_LEVEL': 'True',
            'PYTHON': sys.executable,
            'GLOBAL_VENV': 'True',
            'USE_VENV': 'False',
            'DEVSTACK_VENV': venv.prefix,
            'CEILOMETER_CONF_DIR': str(self.ceilometer_dir),
            'CEILOMETER_CONF': str(self.ceilometer_conf),
            'CEILOMETER_BIN_DIR': os.path.join(venv.prefix, 'bin'),
            # the stand-ins' own
            'DEVSTACK_TEST_CALLS': str(self.calls_file),
            'DEVSTACK_TEST_GNOCCHI_DIR': str(self.gnocchi_dir),
            'DEVSTACK_TEST_CEILOMETER_POLLING_ALL': POLLING_ALL,
            'DEVSTACK_TEST_PIP': os.path.join(os.path.dirname(sys.executable),
                                              'pip'),
            'DEVSTACK_TEST_WHEEL': install_envs.session_wheel(),
            'PIP_DISABLE_PIP_VERSION_CHECK': '1',
            'PIP_ROOT_USER_ACTION': 'ignore',
            # local.conf
            'QGA_MONITOR_DIR': ROOT,
            'QGA_MONITOR_CONF_DIR': str(self.conf_dir),
            'QGA_MONITOR_SOCKET_DIR': str(self.socket_dir),
            'QGA_MONITOR_QEMU_CONF': str(self.qemu_conf),
        }
        self.env.update(RABBIT)
        self.env.update(localrc)

    def run(self, *steps: str, check: bool = True
            ) -> subprocess.CompletedProcess:
        """Run plugin steps in one bash (run.sh); fail the test on error."""
        result = subprocess.run(['bash', RUN, *steps], env=self.env,
                                capture_output=True, text=True, timeout=300)
        if check:
            assert result.returncode == 0, result.stderr[-4000:]
        return result

    def calls(self, name: str | None = None) -> list[list[str]]:
        """Recorded calls (function name first), optionally of one name."""
        if not self.calls_file.exists():
            return []
        calls = [line.split('\t') for line in
                 self.calls_file.read_text().splitlines()]
        return [c for c in calls if name is None or c[0] == name]


def _ini(path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    with open(path) as src:
        parser.read_file(src)
    return parser


def _qga_polling_conf(path) -> cfg.ConfigOpts:
    """qga-polling.conf, parsed the way ``qga-polling`` parses it."""
    conf = cfg.ConfigOpts()
    logging.register_options(conf)
    qga_conf.register_opts(conf)
    conf(['--config-file', str(path)], project='qga-monitor',
         default_config_files=[], default_config_dirs=[])
    return conf


def _nova_qga_conf(path) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    nova_qga_conf.register_opts(conf)
    conf.register_opt(cfg.StrOpt('compute_driver'))
    conf(['--config-file', str(path)], default_config_files=[],
         default_config_dirs=[])
    return conf


def _ceilometer_conf(path, polling_yaml=None) -> cfg.ConfigOpts:
    """ceilometer.conf, as Ceilometer's agents and our options see it."""
    conf = ceilometer_service.prepare_service(
        ['ceilometer-polling', '--config-file', str(path)], [])
    ceilometer_options.register_opts(conf)
    if polling_yaml is not None:
        conf.set_override('cfg_file', str(polling_yaml), group='polling')
    return conf


def _polling_sources(ceilometer_conf_path, polling_yaml):
    """Ceilometer's PollingManager's sources for that polling.yaml."""
    conf = _ceilometer_conf(ceilometer_conf_path, polling_yaml)
    return ceilometer_polling.PollingManager(conf).sources


def _check_nova_conf(path, hooks, socket_dir, socket_group=QEMU_GROUP):
    ini = _ini(path)
    assert ini['DEFAULT']['compute_driver'] == 'qga_libvirt.QgaLibvirtDriver'
    known = {opt.name for opt in nova_qga_conf.qga_opts}
    assert set(ini['qga']) - set(ini.defaults()) <= known
    conf = _nova_qga_conf(path)
    assert conf.qga.domain_hooks == hooks
    assert conf.qga.monitor_channel_name == 'org.openstack.monitor.0'
    assert conf.qga.socket_dir == str(socket_dir)
    assert conf.qga.socket_group == socket_group


def _check_documented(path):
    """Every option the plugin wrote is one of the sample's."""
    documented = documented_options(open(SAMPLE).read())
    ini = _ini(path)
    for section in ['DEFAULT'] + ini.sections():
        names = (set(ini.defaults()) if section == 'DEFAULT'
                 else set(ini[section]) - set(ini.defaults()))
        assert names <= documented[section], section


def _check_transport_urls(conf):
    """Both URLs point at devstack's RabbitMQ, as oslo.messaging reads them."""
    transport = oslo_messaging.get_notification_transport(conf)
    try:
        for url in (conf.transport_url,
                    conf.oslo_messaging_notifications.transport_url):
            parsed = oslo_messaging.TransportURL.parse(conf, url)
            assert parsed.transport == 'rabbit'
            (host,) = parsed.hosts
            assert (host.hostname, host.port, host.username,
                    host.password) == ('192.0.2.10', 5672, 'stackrabbit',
                                       'rabbitpw')
    finally:
        transport.cleanup()


def test_plugin_passes_shellcheck():
    result = subprocess.run(['shellcheck', '--external-sources', *SHELL_FILES],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout


#: local.conf as an operator writes it: values for other services' files.
LOCAL_CONF = """[[local|localrc]]
ADMIN_PASSWORD=secret

[[post-config|$CEILOMETER_CONF]]
[publisher]
telemetry_secret = devstack-secret

[[post-config|$NOVA_CONF]]
[DEFAULT]
host = compute-7
"""


def test_standalone_dedicated_with_ceilometer(tmp_path, devstack_venv):
    host = Host(tmp_path, COMPUTE + CEILOMETER, devstack_venv,
                local_conf=LOCAL_CONF)
    host.run(*STACK)

    # install: our package, really installed into devstack's venv, where
    # Nova is editable (setup_develop) and the driver loads through Nova's
    # lookup, and the console scripts are
    assert host.calls('setup_install') == [['setup_install', ROOT]]
    assert not host.calls('setup_develop')
    assert os.path.exists(devstack_venv.bin('qga-polling'))
    loaded = install_envs.load_compute_driver(devstack_venv.python,
                                              str(tmp_path))
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    loaded = json.loads(loaded.stdout.splitlines()[-1])
    assert loaded['class'] == 'nova_qga.driver.QgaLibvirtDriver'
    assert loaded['nova'].startswith(
        os.path.join(devstack_venv.prefix, 'src') + os.sep), loaded
    # the socket directory: QEMU's user and group (qemu.conf), no others
    st = os.stat(host.socket_dir)
    assert oct(st.st_mode & 0o7777) == oct(0o2770)
    assert (st.st_uid, st.st_gid) == (_uid(QEMU_USER), _gid(QEMU_GROUP))

    # post-config: nova.conf, which nova-cpu.conf is then made from
    for path in (host.nova_conf, host.nova_cpu_conf):
        _check_nova_conf(path, ['agent_channel', 'monitor_channel'],
                         host.socket_dir)
    assert _ini(host.nova_conf)['oslo_messaging_notifications'][
        'driver'] == 'messagingv2'

    # qga-polling.conf, with the secret and host local.conf gave the
    # other services
    conf = _qga_polling_conf(host.qga_conf)
    assert conf.debug is True
    assert conf.qga_polling.discovery == 'libvirt'
    assert conf.qga_polling.publishers == ['notifier://']
    assert conf.qga_polling.interval == 60
    assert conf.qga_polling.transport == 'auto'
    assert conf.qga_polling.monitor_channel_name == 'org.openstack.monitor.0'
    assert conf.publisher.telemetry_secret == 'devstack-secret'
    assert conf.host == 'compute-7'
    _check_transport_urls(conf)
    _check_documented(host.qga_conf)
    st = os.stat(host.conf_dir)
    assert oct(st.st_mode & 0o777) == oct(0o750)
    assert st.st_uid == _uid(STACK_USER)

    # post-config: Ceilometer's notification agent gets our definitions;
    # its compute agent, which finds our pollsters installed, must not poll
    # the guests as well.
    assert (host.ceilometer_dir / 'gnocchi_resources.yaml').read_bytes() == (
        open(OUR_GNOCCHI, 'rb').read())
    sources = _polling_sources(host.ceilometer_conf, host.polling_yaml)
    assert [s.name for s in sources] == ['all_pollsters']
    for meter in _meters():
        assert not sources[0].support_meter(meter), meter
    for meter in CEILOMETER_METERS:
        assert sources[0].support_meter(meter)
    assert not _ini(host.ceilometer_conf).has_section('qga_polling')

    # extra: the resource types, then the service, in the libvirt group;
    # the stack user is in QEMU's group too (the sockets)
    assert {p.name for p in host.gnocchi_dir.iterdir()} == NEW_TYPES
    (ours,) = [c for c in host.calls('run_process') if c[1] == 'qga-polling']
    assert ours[3] == LIBVIRT_GROUP
    command = ours[2].split()
    assert command == [devstack_venv.bin('qga-polling'),
                       '--config-file', str(host.qga_conf)]
    assert ['add_user_to_group', STACK_USER, QEMU_GROUP] in host.calls(
        'add_user_to_group')
    assert STACK_USER in grp.getgrnam(QEMU_GROUP).gr_mem


def test_standalone_without_ceilometer_signs_like_ceilometer(tmp_path, devstack_venv):
    """No secret anywhere: Ceilometer's default, so signatures still match."""
    host = Host(tmp_path, COMPUTE, devstack_venv)
    host.run(*STACK)
    assert not _ini(host.qga_conf).has_section('publisher')
    assert not _ini(host.qga_conf).has_option('DEFAULT', 'host')
    conf = _qga_polling_conf(host.qga_conf)
    ceilometer_default = {o.name: o.default
                          for o in publisher_utils.OPTS}['telemetry_secret']
    assert conf.publisher.telemetry_secret == ceilometer_default
    assert not host.ceilometer_dir.exists()
    assert not host.calls('openstack')
    assert len(host.calls('run_process')) == 1


def test_secret_from_localrc_goes_to_both_services(tmp_path, devstack_venv):
    host = Host(tmp_path, COMPUTE + CEILOMETER, devstack_venv,
                QGA_MONITOR_TELEMETRY_SECRET='from-localrc')
    host.run(*STACK)
    assert _qga_polling_conf(
        host.qga_conf).publisher.telemetry_secret == 'from-localrc'
    assert _ceilometer_conf(
        host.ceilometer_conf).publisher.telemetry_secret == 'from-localrc'


def test_local_conf_post_config_values_win(tmp_path, devstack_venv):
    """Read after stack.sh's merge: nova-cpu.conf's host, ceilometer.conf's
    secret over QGA_MONITOR_TELEMETRY_SECRET, and what local.conf sets in
    qga-polling.conf itself.
    """
    local_conf = """[[post-config|$CEILOMETER_CONF]]
[publisher]
telemetry_secret = merged-secret

[[post-config|$NOVA_CPU_CONF]]
[DEFAULT]
host = compute-cpu-9

[[post-config|$QGA_MONITOR_CONF]]
[qga_polling]
interval = 30
max_concurrent_guests = 3
"""
    host = Host(tmp_path, COMPUTE + CEILOMETER, devstack_venv,
                local_conf=local_conf,
                QGA_MONITOR_TELEMETRY_SECRET='from-localrc')
    host.run(*STACK)
    conf = _qga_polling_conf(host.qga_conf)
    assert conf.publisher.telemetry_secret == 'merged-secret'
    assert _ceilometer_conf(
        host.ceilometer_conf).publisher.telemetry_secret == 'merged-secret'
    assert conf.host == 'compute-cpu-9'
    assert conf.qga_polling.interval == 30
    assert conf.qga_polling.max_concurrent_guests == 3
    _check_documented(host.qga_conf)


def test_ceilometer_mode_standard_channel(tmp_path, devstack_venv):
    host = Host(tmp_path, COMPUTE + CEILOMETER, devstack_venv,
                QGA_MONITOR_MODE='ceilometer',
                QGA_MONITOR_CHANNEL='standard', QGA_MONITOR_INTERVAL='120')
    host.run(*STACK)

    default_group = {o.name: o.default for o in nova_qga_conf.qga_opts}[
        'socket_group']
    _check_nova_conf(host.nova_cpu_conf, ['agent_channel'], host.socket_dir,
                     default_group)
    # No dedicated channel, so no socket directory.
    assert not host.socket_dir.exists()
    assert _qga_polling_conf(host.qga_conf).qga_polling.transport == 'libvirt'

    # Our options, as Ceilometer's agent sees them with ours registered.
    conf = _ceilometer_conf(host.ceilometer_conf)
    assert conf.qga_polling.transport == 'libvirt'
    assert conf.qga_polling.monitor_channel_name == 'org.openstack.monitor.0'

    # polling.yaml, after Ceilometer's plugin copied its own over it: each
    # meter of ours in our source only, Ceilometer's own meters still in
    # its source.
    sources = {s.name: s for s in _polling_sources(host.ceilometer_conf,
                                                   host.polling_yaml)}
    assert set(sources) == {'all_pollsters', 'qga_pollsters'}
    assert sources['qga_pollsters'].get_interval() == 120
    for meter in _meters():
        assert [n for n, s in sources.items() if s.support_meter(meter)] == [
            'qga_pollsters'], meter
    for meter in CEILOMETER_METERS:
        assert sources['all_pollsters'].support_meter(meter)

    # Only Ceilometer's agent runs.
    assert [c[1] for c in host.calls('run_process')] == ['ceilometer-acompute']
    assert {p.name for p in host.gnocchi_dir.iterdir()} == NEW_TYPES


def test_second_stack_changes_nothing(tmp_path, devstack_venv):
    """Re-stack: Ceilometer's plugin copies its polling file again first."""
    host = Host(tmp_path, COMPUTE + CEILOMETER, devstack_venv,
                QGA_MONITOR_MODE='ceilometer', local_conf=LOCAL_CONF)
    host.run(*STACK)
    files = (host.nova_conf, host.nova_cpu_conf, host.qga_conf,
             host.ceilometer_conf, host.polling_yaml)
    first = [p.read_text() for p in files]
    creates = [c for c in host.calls('openstack') if c[3] == 'create']
    host.run(*STACK)
    assert [p.read_text() for p in files] == first
    assert [c for c in host.calls('openstack') if c[3] == 'create'] == creates
    assert len(creates) == len(NEW_TYPES)
    assert 'qga_pollsters' in host.polling_yaml.read_text()


def test_ceilometer_plugin_must_run_first(tmp_path, devstack_venv):
    """Enabled after us, its post-config copy would undo our polling.yaml."""
    host = Host(tmp_path, COMPUTE + CEILOMETER, devstack_venv,
                plugins=['qga-monitor', 'ceilometer'],
                QGA_MONITOR_MODE='ceilometer')
    result = host.run('stack:pre-install', check=False)
    assert result.returncode != 0
    assert 'enable_plugin ceilometer must come before' in result.stderr
    assert ['plugin_requires', 'qga-monitor', 'ceilometer'] in host.calls(
        'plugin_requires')
    with open(os.path.join(ROOT, 'devstack', 'settings')) as settings:
        # zuul's local.conf writer orders plugins by this very line.
        assert 'plugin_requires qga-monitor ceilometer\n' in settings.read()


def test_use_venv_installs_into_nova_and_ceilometer_venvs(tmp_path, devstack_venv):
    """USE_VENV=True: the driver loads in Nova's venv, the pollsters are
    entry points of Ceilometer's, qga-polling is in devstack's.
    """
    nova = install_envs.nova_wheel_env(None)
    ceilometer = install_envs.ceilometer_env(None)
    host = Host(tmp_path, COMPUTE + CEILOMETER, devstack_venv, USE_VENV='True',
                QGA_MONITOR_MODE='ceilometer',
                DEVSTACK_TEST_PROJECT_VENVS='nova=%s ceilometer=%s' % (
                    nova.prefix, ceilometer.prefix))
    host.run(*STACK)
    assert [c[1] for c in host.calls('pip_install')] == [
        '', nova.prefix, ceilometer.prefix]
    loaded = install_envs.load_compute_driver(nova.python, str(tmp_path))
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    pollsters = subprocess.run(
        [ceilometer.python, '-I', '-c',
         'import importlib.metadata as m; print(" ".join(e.name for e in '
         'm.entry_points(group="ceilometer.poll.compute")))'],
        capture_output=True, text=True, check=True, timeout=60).stdout.split()
    assert set(_meters()) <= set(pollsters)


def test_use_venv_without_nova_venv_stops_the_install(tmp_path, devstack_venv):
    host = Host(tmp_path, COMPUTE, devstack_venv, USE_VENV='True',
                DEVSTACK_TEST_PROJECT_VENVS='nova=%s' % (tmp_path / 'none'))
    result = host.run('stack:pre-install', 'stack:install', check=False)
    assert result.returncode != 0
    assert "nova's venv" in result.stderr
    assert not host.calls('pip_install')


def test_unstack_stops_the_service_and_clean_removes_our_files(tmp_path, devstack_venv):
    host = Host(tmp_path, COMPUTE + CEILOMETER, devstack_venv)
    host.run(*STACK)
    host.run('unstack')
    assert [c[1] for c in host.calls('stop_process')] == [
        'ceilometer-acompute', 'qga-polling']
    host.run('clean')
    assert not host.conf_dir.exists()
    assert not host.socket_dir.exists()
    assert not (host.ceilometer_dir / 'gnocchi_resources.yaml').exists()
    with open(POLLING_ALL) as src:
        assert yaml.safe_load(host.polling_yaml.read_text()) == (
            yaml.safe_load(src))


def test_clean_takes_our_source_out_of_polling_yaml(tmp_path, devstack_venv):
    host = Host(tmp_path, COMPUTE + CEILOMETER, devstack_venv,
                QGA_MONITOR_MODE='ceilometer')
    host.run(*STACK)
    host.run('unstack')
    assert [c[1] for c in host.calls('stop_process')] == [
        'ceilometer-acompute']
    host.run('clean')
    with open(POLLING_ALL) as src:
        assert yaml.safe_load(host.polling_yaml.read_text()) == (
            yaml.safe_load(src))
    assert not _ini(host.ceilometer_conf).has_option('qga_polling',
                                                     'transport')


def test_controller_without_compute(tmp_path, devstack_venv):
    """Notification agent and Gnocchi only: nothing of Nova's is touched."""
    host = Host(tmp_path, ['ceilometer-anotification', 'gnocchi-api'],
                devstack_venv)
    host.run(*STACK[:3], 'stack:extra')
    assert not host.nova_conf.exists()
    assert not host.conf_dir.exists() and not host.socket_dir.exists()
    assert (host.ceilometer_dir / 'gnocchi_resources.yaml').exists()
    assert {p.name for p in host.gnocchi_dir.iterdir()} == NEW_TYPES
    assert not host.calls('run_process')


@pytest.mark.parametrize('qemu_conf, vendor, group', [
    # qemu.conf sets it, as a name or as "+gid"
    ('group = "libvirt-qemu"\n', None, 'libvirt-qemu'),
    ('group = "+%d"\n' % grp.getgrnam('nogroup').gr_gid, None, 'nogroup'),
    # commented out or no qemu.conf: the distribution's default
    ('#group = "root"\n', 'Debian', 'libvirt-qemu'),
    (None, 'Ubuntu', 'kvm'),
])
def test_socket_group_is_qemus(tmp_path, devstack_venv, qemu_conf, vendor,
                               group):
    localrc = {'DEVSTACK_TEST_OS_VENDOR': vendor} if vendor else {}
    host = Host(tmp_path, COMPUTE, devstack_venv, qemu_conf=qemu_conf,
                **localrc)
    host.run(*STACK)
    assert os.stat(host.socket_dir).st_gid == _gid(group)
    _check_nova_conf(host.nova_cpu_conf, ['agent_channel', 'monitor_channel'],
                     host.socket_dir, group)
    assert STACK_USER in grp.getgrnam(group).gr_mem


def test_missing_qemu_group_stops_the_install(tmp_path, devstack_venv):
    """RHEL's default "qemu" does not exist here: a clear error."""
    host = Host(tmp_path, COMPUTE, devstack_venv, qemu_conf=None,
                DEVSTACK_TEST_OS_VENDOR='Rocky')
    result = host.run('stack:pre-install', 'stack:install', check=False)
    assert result.returncode != 0
    assert "QEMU's passwd 'qemu'" in result.stderr
    assert 'QGA_MONITOR_SOCKET_GROUP' in result.stderr


@pytest.mark.parametrize('localrc, services, message', [
    ({'QGA_MONITOR_MODE': 'agent'}, COMPUTE, 'QGA_MONITOR_MODE'),
    ({'QGA_MONITOR_CHANNEL': 'both'}, COMPUTE, 'QGA_MONITOR_CHANNEL'),
    ({'QGA_MONITOR_INTERVAL': '0'}, COMPUTE, 'QGA_MONITOR_INTERVAL'),
    ({'VIRT_DRIVER': 'ironic'}, COMPUTE, 'VIRT_DRIVER=libvirt'),
    ({'QGA_MONITOR_MODE': 'ceilometer'}, COMPUTE, "Ceilometer's devstack plugin"),
    ({'QGA_MONITOR_MODE': 'ceilometer'}, COMPUTE + ['ceilometer-anotification'],
     'ceilometer-acompute'),
    ({'QGA_MONITOR_MODE': 'ceilometer',
      'ENABLED_SERVICES': ','.join(COMPUTE + CEILOMETER + ['qga-polling'])},
     COMPUTE + CEILOMETER, 'disable the qga-polling service'),
    ({'ENABLED_SERVICES': 'ceilometer-anotification,qga-polling'},
     ['ceilometer-anotification'], 'compute nodes only'),
])
def test_bad_settings_stop_the_stack_early(tmp_path, devstack_venv, localrc,
                                           services, message):
    host = Host(tmp_path, services, devstack_venv, **localrc)
    result = host.run('stack:pre-install', check=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert not host.calls('setup_install')


def _polling_yaml_tool(*args: str) -> None:
    subprocess.run([sys.executable, POLLING_YAML_TOOL, *args], check=True,
                   capture_output=True, timeout=60)


def test_polling_yaml_tool_on_other_kinds_of_sources(tmp_path):
    """Named lists lose our meters, exclusion lists gain ours, and back."""
    target = tmp_path / 'polling.yaml'
    original = {'sources': [
        {'name': 'named', 'interval': 300,
         'meters': ['cpu', 'guest.agent.up', 'guest.users']},
        {'name': 'all_but', 'interval': 600, 'meters': ['!cpu']},
        {'name': 'ours_only_excluded', 'interval': 600,
         'meters': ['!guest.agent.up']},
        {'name': 'by_pattern', 'interval': 300,
         'meters': ['memory.*', 'guest.*']},
        {'name': 'ours_only_named', 'interval': 300,
         'meters': ['guest.users', 'guest.disk.*']},
    ]}
    target.write_text(yaml.safe_dump(original))
    ceilometer_conf = tmp_path / 'ceilometer.conf'
    ceilometer_conf.write_text('[DEFAULT]\n')
    _polling_yaml_tool('add', str(target), OUR_SOURCE, '--interval', '30')
    merged = yaml.safe_load(target.read_text())
    # Every source is still one Ceilometer accepts.
    assert len(_polling_sources(ceilometer_conf, target)) == 5
    by_name = {s['name']: s for s in merged['sources']}
    assert by_name['named']['meters'] == ['cpu']
    assert by_name['by_pattern']['meters'] == ['memory.*']
    # Ceilometer refuses a source without meters: that one goes.
    assert 'ours_only_named' not in by_name
    assert by_name['all_but']['meters'] == ['!cpu'] + [
        '!' + m for m in _meters()]
    assert by_name['qga_pollsters']['interval'] == 30
    assert by_name['qga_pollsters']['meters'] == _meters()
    _polling_yaml_tool('add', str(target), OUR_SOURCE, '--interval', '30')
    assert yaml.safe_load(target.read_text()) == merged

    # exclude: the same, without our source
    _polling_yaml_tool('exclude', str(target), OUR_SOURCE)
    excluded = yaml.safe_load(target.read_text())
    assert excluded == dict(merged, sources=merged['sources'][:-1])
    assert len(_polling_sources(ceilometer_conf, target)) == 4

    _polling_yaml_tool('remove', str(target), OUR_SOURCE)
    removed = {s['name']: s for s in
               yaml.safe_load(target.read_text())['sources']}
    assert set(removed) == {'named', 'all_but', 'ours_only_excluded',
                            'by_pattern'}
    assert removed['named']['meters'] == ['cpu']
    assert removed['all_but']['meters'] == ['!cpu']
    # "all but ours" without our source is "all".
    assert removed['ours_only_excluded']['meters'] == ['*']
    assert len(_polling_sources(ceilometer_conf, target)) == 4
    before = target.stat().st_mtime_ns
    _polling_yaml_tool('remove', str(target), OUR_SOURCE)
    assert target.stat().st_mtime_ns == before


def _uid(user: str) -> int:
    return pwd.getpwnam(user).pw_uid


def _gid(group: str) -> int:
    return grp.getgrnam(group).gr_gid
