"""
Static checks of docker/: no Docker daemon runs here, so the images are never built in tests.

The compose files must be valid YAML whose builds point at existing Dockerfiles; every COPY
source must exist in the repository; the pins must be the workspace's; the commands the
containers run must exist and accept the arguments given (launch arguments the launch file
declares, options training_run parses).
"""

import ast
from pathlib import Path
import re

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
DOCKER = REPO / 'docker'
DOCKERFILES = sorted(DOCKER.glob('Dockerfile.*[!e]'))  # not the .dockerignore files
COMPOSE_FILES = sorted(DOCKER.glob('compose.*.yaml'))


def interpolate(value):
    """Apply compose's ${VAR:-default} (default) and ${VAR:?error} (a stand-in value)."""
    value = re.sub(r'\$\{\w+:-([^}]*)\}', r'\1', value)
    return re.sub(r'\$\{\w+:\?[^}]*\}', 'set-by-user', value)


def instructions(path):
    """[(INSTRUCTION, arguments)] of a Dockerfile, continuation lines joined."""
    text = re.sub(r'\\\n', ' ', path.read_text())
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith('#'):
            keyword, _, rest = line.partition(' ')
            rows.append((keyword.upper(), rest.strip()))
    return rows


def services():
    for path in COMPOSE_FILES:
        for name, service in yaml.safe_load(path.read_text())['services'].items():
            yield path, name, service


def command_of(service):
    return [interpolate(str(part)) for part in service['command']]


def test_docker_folder_has_both_images_both_compose_files_and_a_readme():
    assert {p.name for p in DOCKERFILES} == {'Dockerfile.real', 'Dockerfile.sim'}
    assert {p.name for p in COMPOSE_FILES} == {'compose.real.yaml', 'compose.sim.yaml'}
    readme = (DOCKER / 'README.md').read_text()
    assert 'No Docker daemon runs' in readme and 'NVIDIA Container Toolkit' in readme


@pytest.mark.parametrize('path', DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copies_only_files_that_exist(path):
    rows = instructions(path)
    assert rows[0][0] == 'FROM' or rows[0][0] == 'ARG'
    copies = [args.split() for keyword, args in rows if keyword == 'COPY']
    assert copies
    for parts in copies:
        for source in parts[:-1]:
            assert (REPO / source).exists(), f'{path.name}: COPY {source} does not exist'
    entrypoint = [args for keyword, args in rows if keyword == 'ENTRYPOINT']
    assert entrypoint and ast.literal_eval(entrypoint[0]) == ['/entrypoint.sh']
    script = next(parts[0] for parts in copies if parts[-1] == '/entrypoint.sh')
    assert (REPO / script).stat().st_mode & 0o111, f'{script} is not executable'
    ignore = (DOCKER / f'{path.name}.dockerignore').read_text().split()
    assert {'.venv', 'build', 'install', '.git'} <= set(ignore)


def test_real_image_is_the_official_ros_kilted_image_with_the_drivers():
    rows = instructions(DOCKER / 'Dockerfile.real')
    assert rows[0] == ('FROM', 'ros:kilted-ros-base-noble')
    text = ' '.join(args for _, args in rows)
    for package in ('ros-kilted-ur', 'ros-kilted-realsense2-camera', 'ros-kilted-moveit',
                    'ros-kilted-moveit-py', 'ros-kilted-ros-gz', 'ros-kilted-gz-ros2-control'):
        assert f' {package} ' in text, package
    args = dict(a.split('=', 1) for k, a in rows if k == 'ARG' and '=' in a)
    assert re.fullmatch(r'[0-9a-f]{40}', args['ROBOTIQ_COMMIT'])
    assert re.fullmatch(r'[0-9a-f]{40}', args['SERIAL_COMMIT'])
    top_level = (REPO / 'requirements' / 'top-level.txt').read_text()
    for name in ('safetensors', 'mcap', 'mcap-ros2-support'):
        assert re.search(rf'^{name}==', top_level, re.M), name


@pytest.mark.parametrize('path', DOCKERFILES, ids=lambda p: p.name)
def test_images_install_the_locked_torch_version(path):
    lock = (REPO / 'requirements' / 'lock.txt').read_text()
    locked = re.search(r'^torch==([\d.]+)', lock, re.M).group(1)
    args = dict(a.split('=', 1) for k, a in instructions(path) if k == 'ARG' and '=' in a)
    assert args['TORCH_VERSION'] == locked


def test_sim_image_uses_python_3_11_and_the_bootstrap():
    rows = instructions(DOCKER / 'Dockerfile.sim')
    assert rows[0] == ('FROM', 'python:3.11-slim-bookworm')
    assert any(k == 'RUN' and 'tools/bootstrap.sh' in a for k, a in rows)
    assert (REPO / 'tools' / 'bootstrap.sh').is_file()


@pytest.mark.parametrize('path', COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_file_builds_from_the_repository_with_an_existing_dockerfile(path):
    data = yaml.safe_load(path.read_text())
    assert data['services']
    for name, service in data['services'].items():
        build = service['build']
        context = (path.parent / build['context']).resolve()
        assert context == REPO, f'{path.name}: {name} builds from {context}'
        assert (context / build['dockerfile']).is_file()
        assert isinstance(service['command'], list) and service['command']


def test_services_that_reserve_a_gpu_use_the_compose_device_reservation():
    reserved = 0
    for path, name, service in services():
        devices = service.get('deploy', {}).get('resources', {}).get('reservations', {}).get(
            'devices')
        if devices:
            reserved += 1
            assert devices == [{'driver': 'nvidia', 'count': 1, 'capabilities': ['gpu']}]
            assert service['build']['args']['TORCH_VARIANT'] == 'cuda', f'{path.name}: {name}'
    assert reserved == 2


def test_real_cell_runs_real_launch_with_declared_arguments_on_the_host_network():
    (service,) = [s for p, _, s in services() if p.name == 'compose.real.yaml']
    assert service['network_mode'] == 'host'
    assert {'c 81:* rmw', 'c 189:* rmw', 'c 188:* rmw'} <= set(service['device_cgroup_rules'])
    command = command_of(service)
    assert command[:4] == ['ros2', 'launch', 'vpg_bringup', 'real.launch.py']
    launch_file = REPO / 'src' / 'vpg_bringup' / 'launch' / 'real.launch.py'
    tree = ast.parse(launch_file.read_text())
    table = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                 and getattr(node.targets[0], 'id', '') == 'ARGUMENTS')
    declared = {row.elts[0].value for row in table.elts}
    required = {row.elts[0].value for row in table.elts
                if isinstance(row.elts[1], ast.Constant) and row.elts[1].value is None}
    given = dict(argument.split(':=', 1) for argument in command[4:])
    assert required and required <= set(given) <= declared
    assert given['ur_type'] == 'ur5e'  # the cell's arm unless UR_TYPE says otherwise


def test_real_cell_passes_the_security_and_discovery_settings():
    (service,) = [s for p, _, s in services() if p.name == 'compose.real.yaml']
    environment = {key: interpolate(str(value)) for key, value in service['environment'].items()}
    assert environment['ROS_SECURITY_ENABLE'] == 'false'
    assert environment['ROS_SECURITY_STRATEGY'] == 'Enforce'
    keystore = environment['ROS_SECURITY_KEYSTORE']
    assert any(interpolate(v).split(':')[1] == keystore for v in service['volumes'])
    assert environment['ROS_AUTOMATIC_DISCOVERY_RANGE'] in ('SUBNET', 'LOCALHOST', 'OFF',
                                                            'SYSTEM_DEFAULT')
    assert 'ROS_STATIC_PEERS' in environment


def test_sim_training_command_parses_with_training_run():
    from vpg_training import training_run
    commands = [command_of(s) for p, _, s in services() if p.name == 'compose.sim.yaml']
    assert len(commands) == 2
    for command in commands:
        assert command[:3] == ['python', '-m', 'vpg_training.training_run']
        args = training_run.parse_args(command[3:])
        assert args.cells == 2 and args.run_dir == '/runs/sim'
    devices = {training_run.parse_args(c[3:]).device for c in commands}
    assert devices == {'cpu', 'cuda'}


def test_entrypoints_source_the_environments():
    real = (DOCKER / 'entrypoint.sh').read_text()
    assert '/opt/ros/${ROS_DISTRO}/setup.bash' in real and 'exec "$@"' in real
    assert '/opt/vpg_ws/install/setup.bash' in real
    sim = (DOCKER / 'entrypoint_sim.sh').read_text()
    assert '. tools/env.sh' in sim and 'exec "$@"' in sim
    workdirs = [a for k, a in instructions(DOCKER / 'Dockerfile.sim') if k == 'WORKDIR']
    assert workdirs == ['/opt/vpg_ws']
