"""devstack/plugin.sh, run phase by phase under bash as devstack runs it.

devstack itself cannot run here (it builds a whole cloud), so
tests/devstack/run.sh sources the plugin's settings and plugin.sh with
tests/devstack/functions.sh standing in for devstack's functions: the ini
functions are devstack's own inc/ini-config, ``run_process`` and the
install functions only record their arguments, and ``openstack`` stands in
for the openstack client and Gnocchi (see functions.sh).  Each test builds
the files devstack and Ceilometer's plugin would have written by then
(nova.conf, ceilometer.conf, Ceilometer's own polling_all.yaml as
polling.yaml) in a temporary tree and points the devstack variables at it.

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
import importlib.metadata
import os
import pwd
import shutil
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

from ceilometer_qga.pollsters import options as ceilometer_options
from ceilometer_qga import conf as qga_conf
from nova_qga import conf as nova_qga_conf
from tests.unit.test_config_samples import documented_options

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
               os.path.join(ROOT, 'tests', 'devstack', 'functions.sh')]
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
# Users and groups every Debian system has, standing in for libvirt-qemu
# and libvirt (absent on this machine).
QEMU_USER = 'nobody'
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


class Host:
    """A temporary tree standing for one devstack host, and its variables."""

    def __init__(self, tmp, services, ceilometer_secret=None, nova_host=None,
                 **localrc):
        self.tmp = tmp
        self.etc = tmp / 'etc'
        self.nova_conf = self.etc / 'nova' / 'nova.conf'
        self.nova_cpu_conf = self.etc / 'nova' / 'nova-cpu.conf'
        self.ceilometer_dir = self.etc / 'ceilometer'
        self.ceilometer_conf = self.ceilometer_dir / 'ceilometer.conf'
        self.polling_yaml = self.ceilometer_dir / 'polling.yaml'
        self.conf_dir = self.etc / 'qga-monitor'
        self.qga_conf = self.conf_dir / 'qga-polling.conf'
        self.socket_dir = tmp / 'var' / 'lib' / 'libvirt' / 'qemu' / 'qga'
        self.venv = tmp / 'opt' / 'stack' / 'data' / 'venv'
        self.calls_file = tmp / 'calls'
        self.gnocchi_dir = tmp / 'gnocchi-resource-types'
        self.gnocchi_dir.mkdir()
        self.services = services
        # What lib/nova has written before the plugin's post-config.
        self.nova_conf.parent.mkdir(parents=True)
        if 'n-cpu' in services:
            self.nova_conf.write_text(
                '[DEFAULT]\ncompute_driver = libvirt.LibvirtDriver\n'
                + ('host = %s\n' % nova_host if nova_host else '')
                + '\n[oslo_messaging_notifications]\ndriver = messagingv2\n')
        # What Ceilometer's plugin (enabled first) has written.
        if any(s.startswith('ceilometer-') for s in services):
            self.ceilometer_dir.mkdir(parents=True)
            text = ('[DEFAULT]\ntransport_url = rabbit://stackrabbit:'
                    'rabbitpw@192.0.2.10:5672/\n\n'
                    '[oslo_messaging_notifications]\n'
                    'topics = notifications\n')
            if ceilometer_secret is not None:
                text += '\n[publisher]\ntelemetry_secret = %s\n' % (
                    ceilometer_secret)
            self.ceilometer_conf.write_text(text)
            shutil.copy(POLLING_ALL, self.polling_yaml)
        self.env = {
            'PATH': os.environ['PATH'],
            'HOME': str(tmp),
            'LANG': 'C.UTF-8',
            # stackrc, lib/nova, lib/rpc_backend, ceilometer's settings
            'DEST': str(tmp / 'opt' / 'stack'),
            'STACK_USER': 'root',
            'ENABLED_SERVICES': ','.join(services),
            'VIRT_DRIVER': 'libvirt',
            'LIBVIRT_GROUP': LIBVIRT_GROUP,
            'NOVA_CONF': str(self.nova_conf),
            'NOVA_CPU_CONF': str(self.nova_cpu_conf),
            'ENABLE_DEBUG_LOG_LEVEL': 'True',
            'PYTHON': sys.executable,
            'GLOBAL_VENV': 'True',
            'DEVSTACK_VENV': str(self.venv),
            'CEILOMETER_CONF_DIR': str(self.ceilometer_dir),
            'CEILOMETER_CONF': str(self.ceilometer_conf),
            # the stand-ins' own
            'DEVSTACK_TEST_CALLS': str(self.calls_file),
            'DEVSTACK_TEST_GNOCCHI_DIR': str(self.gnocchi_dir),
            # local.conf
            'QGA_MONITOR_DIR': ROOT,
            'QGA_MONITOR_CONF_DIR': str(self.conf_dir),
            'QGA_MONITOR_SOCKET_DIR': str(self.socket_dir),
            'QGA_MONITOR_QEMU_USER': QEMU_USER,
        }
        self.env.update(RABBIT)
        self.env.update(localrc)

    def run(self, *steps: str, check: bool = True
            ) -> subprocess.CompletedProcess:
        """Run plugin steps in one bash (run.sh); fail the test on error."""
        result = subprocess.run(['bash', RUN, *steps], env=self.env,
                                capture_output=True, text=True, timeout=120)
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


def _check_nova_conf(path, hooks, socket_dir):
    ini = _ini(path)
    assert ini['DEFAULT']['compute_driver'] == 'qga_libvirt.QgaLibvirtDriver'
    known = {opt.name for opt in nova_qga_conf.qga_opts}
    assert set(ini['qga']) - set(ini.defaults()) <= known
    conf = _nova_qga_conf(path)
    assert conf.qga.domain_hooks == hooks
    assert conf.qga.monitor_channel_name == 'org.openstack.monitor.0'
    assert conf.qga.socket_dir == str(socket_dir)
    assert conf.qga.socket_group == LIBVIRT_GROUP


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


def test_standalone_dedicated_with_ceilometer(tmp_path):
    host = Host(tmp_path, COMPUTE + CEILOMETER,
                ceilometer_secret='devstack-secret', nova_host='compute-7')
    host.run(*STACK)

    # install: the package, not editable; the socket directory
    assert host.calls('setup_install') == [['setup_install', ROOT]]
    assert not host.calls('setup_develop') and not host.calls('pip_install')
    st = os.stat(host.socket_dir)
    assert oct(st.st_mode & 0o7777) == oct(0o2770)
    assert (st.st_uid, st.st_gid) == (
        _uid(QEMU_USER), _gid(LIBVIRT_GROUP))

    # post-config: nova.conf, which nova-cpu.conf is then made from
    for path in (host.nova_conf, host.nova_cpu_conf):
        _check_nova_conf(path, ['agent_channel', 'monitor_channel'],
                         host.socket_dir)
    assert _ini(host.nova_conf)['oslo_messaging_notifications'][
        'driver'] == 'messagingv2'

    # post-config: qga-polling.conf
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
    assert oct(os.stat(host.conf_dir).st_mode & 0o777) == oct(0o750)

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

    # extra: the resource types, then the service
    assert {p.name for p in host.gnocchi_dir.iterdir()} == NEW_TYPES
    (run,) = host.calls('run_process')
    assert run[1] == 'qga-polling'
    assert run[3] == LIBVIRT_GROUP
    command = run[2].split()
    assert command == [str(host.venv / 'bin' / 'qga-polling'),
                       '--config-file', str(host.qga_conf)]
    assert 'sudo' not in command
    scripts = importlib.metadata.entry_points(group='console_scripts')
    assert 'qga-polling' in scripts.names


def test_standalone_without_ceilometer_signs_like_ceilometer(tmp_path):
    """No secret anywhere: Ceilometer's default, so signatures still match."""
    host = Host(tmp_path, COMPUTE)
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


def test_secret_from_local_conf_goes_to_both_services(tmp_path):
    host = Host(tmp_path, COMPUTE + CEILOMETER,
                QGA_MONITOR_TELEMETRY_SECRET='from-local-conf')
    host.run(*STACK)
    assert _qga_polling_conf(
        host.qga_conf).publisher.telemetry_secret == 'from-local-conf'
    assert _ceilometer_conf(
        host.ceilometer_conf).publisher.telemetry_secret == 'from-local-conf'


def test_ceilometer_mode_standard_channel(tmp_path):
    host = Host(tmp_path, COMPUTE + CEILOMETER, QGA_MONITOR_MODE='ceilometer',
                QGA_MONITOR_CHANNEL='standard', QGA_MONITOR_INTERVAL='120')
    host.run(*STACK)

    _check_nova_conf(host.nova_cpu_conf, ['agent_channel'], host.socket_dir)
    # No dedicated channel, so no socket directory.
    assert not host.socket_dir.exists()
    assert _qga_polling_conf(host.qga_conf).qga_polling.transport == 'libvirt'

    # Our options, as Ceilometer's agent sees them with ours registered.
    conf = _ceilometer_conf(host.ceilometer_conf)
    assert conf.qga_polling.transport == 'libvirt'
    assert conf.qga_polling.monitor_channel_name == 'org.openstack.monitor.0'

    # polling.yaml: each meter of ours in our source only, Ceilometer's
    # own meters still in its source.
    sources = {s.name: s for s in _polling_sources(host.ceilometer_conf,
                                                   host.polling_yaml)}
    assert set(sources) == {'all_pollsters', 'qga_pollsters'}
    assert sources['qga_pollsters'].get_interval() == 120
    for meter in _meters():
        assert [n for n, s in sources.items() if s.support_meter(meter)] == [
            'qga_pollsters'], meter
    for meter in CEILOMETER_METERS:
        assert sources['all_pollsters'].support_meter(meter)

    # The service is not ours to run in this mode.
    assert not host.calls('run_process')
    assert {p.name for p in host.gnocchi_dir.iterdir()} == NEW_TYPES


def test_second_stack_changes_nothing(tmp_path):
    host = Host(tmp_path, COMPUTE + CEILOMETER, QGA_MONITOR_MODE='ceilometer',
                ceilometer_secret='s1')
    host.run(*STACK)
    files = (host.nova_conf, host.nova_cpu_conf, host.qga_conf,
             host.ceilometer_conf, host.polling_yaml)
    first = [p.read_text() for p in files]
    creates = [c for c in host.calls('openstack') if c[3] == 'create']
    host.run(*STACK)
    assert [p.read_text() for p in files] == first
    assert [c for c in host.calls('openstack') if c[3] == 'create'] == creates
    assert len(creates) == len(NEW_TYPES)


def test_unstack_stops_the_service_and_clean_removes_our_files(tmp_path):
    host = Host(tmp_path, COMPUTE + CEILOMETER)
    host.run(*STACK)
    host.run('unstack')
    assert host.calls('stop_process') == [['stop_process', 'qga-polling']]
    host.run('clean')
    assert not host.conf_dir.exists()
    assert not host.socket_dir.exists()
    assert not (host.ceilometer_dir / 'gnocchi_resources.yaml').exists()
    with open(POLLING_ALL) as src:
        assert yaml.safe_load(host.polling_yaml.read_text()) == (
            yaml.safe_load(src))


def test_clean_takes_our_source_out_of_polling_yaml(tmp_path):
    host = Host(tmp_path, COMPUTE + CEILOMETER, QGA_MONITOR_MODE='ceilometer')
    host.run(*STACK)
    host.run('unstack')
    assert not host.calls('stop_process')
    host.run('clean')
    with open(POLLING_ALL) as src:
        assert yaml.safe_load(host.polling_yaml.read_text()) == (
            yaml.safe_load(src))
    assert not _ini(host.ceilometer_conf).has_option('qga_polling',
                                                     'transport')


def test_controller_without_compute(tmp_path):
    """Notification agent and Gnocchi only: nothing of Nova's is touched."""
    host = Host(tmp_path, ['ceilometer-anotification', 'gnocchi-api'])
    host.run(*STACK[:3], 'stack:extra')
    assert not host.nova_conf.exists()
    assert not host.conf_dir.exists() and not host.socket_dir.exists()
    assert (host.ceilometer_dir / 'gnocchi_resources.yaml').exists()
    assert {p.name for p in host.gnocchi_dir.iterdir()} == NEW_TYPES
    assert not host.calls('run_process')


@pytest.mark.parametrize('localrc, services, message', [
    ({'QGA_MONITOR_MODE': 'agent'}, COMPUTE, 'QGA_MONITOR_MODE'),
    ({'QGA_MONITOR_CHANNEL': 'both'}, COMPUTE, 'QGA_MONITOR_CHANNEL'),
    ({'QGA_MONITOR_INTERVAL': '0'}, COMPUTE, 'QGA_MONITOR_INTERVAL'),
    ({'VIRT_DRIVER': 'ironic'}, COMPUTE, 'VIRT_DRIVER=libvirt'),
    ({'QGA_MONITOR_MODE': 'ceilometer'}, COMPUTE, 'ceilometer-acompute'),
    ({'QGA_MONITOR_MODE': 'ceilometer',
      'ENABLED_SERVICES': ','.join(COMPUTE + CEILOMETER + ['qga-polling'])},
     COMPUTE + CEILOMETER, 'disable the qga-polling service'),
    ({'ENABLED_SERVICES': 'ceilometer-anotification,qga-polling'},
     ['ceilometer-anotification'], 'compute nodes only'),
])
def test_bad_settings_stop_the_stack_early(tmp_path, localrc, services,
                                           message):
    host = Host(tmp_path, services, **localrc)
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
