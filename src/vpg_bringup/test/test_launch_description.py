"""Launch kwargs from NodeSpecs agree with the runner's command lines; graph argument checks."""

import pytest
from vpg_bringup.graph import (format_parameter, gazebo_graph, NodeSpec, real_graph,
                               resolve_config, sim_graph)
from vpg_bringup.launch_description import as_bool, as_int, node_kwargs


def launch_ros_arguments(kwargs):
    """
    Return the `--ros-args` list launch_ros builds from Node kwargs.

    launch_ros writes a parameter dict to a temporary file and passes it with --params-file;
    here each entry of the dict stands for itself as `-p name:=value`, which is how the runner
    passes overrides. Everything else is in launch_ros' order: node name, namespace, parameter
    files and dicts in list order, remappings.
    """
    args = ['--ros-args', '-r', f"__node:={kwargs['name']}"]
    if 'namespace' in kwargs:
        args += ['-r', f"__ns:={kwargs['namespace']}"]
    for entry in kwargs['parameters']:
        if isinstance(entry, dict):
            for key, value in entry.items():
                args += ['-p', f'{key}:={format_parameter(value)}']
        else:
            args += ['--params-file', entry]
    for source, target in kwargs['remappings']:
        args += ['-r', f'{source}:={target}']
    # launch_ros puts `ros_arguments` (here only --enclave) in a --ros-args block of their own;
    # rcl reads every block alike, so their place does not matter.
    return args + list(kwargs.get('ros_arguments', ()))


def all_specs():
    specs = sim_graph(cell='', seed=4, weights='/w.safetensors', calibration_file='/c.yaml')
    specs += sim_graph(cell='cell3', num_objects=7, device='cpu', calibration_file='/c.yaml')
    specs += real_graph('/cal.yaml', weights='/w.safetensors', motion_backend='joint_trajectory')
    specs += gazebo_graph(calibration_file='/c.yaml', trainer=False)
    specs.append(NodeSpec('pkg', 'exe', 'n', '/ns', ('a.yaml', '/abs/b.yaml'),
                          {'s': 'text', 'b': False, 'i': 3, 'f': 0.5, 'l': [1.0, 2.0], 'e': ''},
                          (('/x', '/ns/x'), ('y', 'z'))))
    return specs


@pytest.mark.parametrize('spec', all_specs(), ids=lambda s: f'{s.namespace}/{s.name}')
def test_launch_kwargs_give_the_runners_ros_arguments(spec, tmp_path):
    kwargs = node_kwargs(spec, str(tmp_path))
    assert launch_ros_arguments(kwargs) == spec.ros_arguments(str(tmp_path))
    assert (kwargs['package'], kwargs['executable'], kwargs['output']) == (
        spec.package, spec.executable, 'screen')


def test_launch_kwargs_resolve_parameter_files_and_keep_the_root_namespace_out(tmp_path):
    spec = NodeSpec('vpg_policy', 'policy', 'policy', '', ('sim.yaml', '/abs/x.yaml'),
                    {'device': 'cpu'})
    kwargs = node_kwargs(spec, str(tmp_path))
    assert 'namespace' not in kwargs
    assert kwargs['parameters'] == [str(tmp_path / 'sim.yaml'), '/abs/x.yaml', {'device': 'cpu'}]
    assert resolve_config('sim.yaml', str(tmp_path)) == kwargs['parameters'][0]
    assert node_kwargs(NodeSpec('p', 'e', 'n'), str(tmp_path))['parameters'] == []


def test_specs_with_an_explicit_command_are_not_launchable(tmp_path):
    with pytest.raises(ValueError, match='explicit command'):
        node_kwargs(NodeSpec('x', 'x', 'x', command=('python3', '-c', 'pass')), str(tmp_path))


@pytest.mark.parametrize('text, value', [('true', True), ('False', False), ('1', True),
                                         (' no ', False), (True, True)])
def test_as_bool_reads_launch_booleans(text, value):
    assert as_bool(text) is value


def test_as_bool_and_as_int_refuse_other_text():
    with pytest.raises(ValueError, match='true or false'):
        as_bool('maybe')
    with pytest.raises(ValueError, match='seed must be an integer'):
        as_int('seed', '1.5')
    assert as_int('seed', ' 12 ') == 12


def test_real_graph_checks_its_arguments():
    with pytest.raises(ValueError, match='calibration_file'):
        real_graph('')
    with pytest.raises(ValueError, match='ur_type'):
        real_graph('/c.yaml', ur_type='ur10e')
    with pytest.raises(ValueError, match='motion_backend'):
        real_graph('/c.yaml', motion_backend='servo')
    specs = {spec.name: spec for spec in real_graph('/c.yaml', ur_type='ur5e')}
    assert set(specs) == {'heightmap', 'policy', 'executor'}
    assert specs['executor'].parameters == {'motion_backend': 'moveit', 'robot.model': 'ur5e'}
    assert specs['heightmap'].parameters == {'calibration_file': '/c.yaml'}
    assert all(spec.parameter_files == ('real.yaml',) and spec.namespace == ''
               for spec in specs.values())
    assert all('use_sim_time' not in spec.parameters for spec in specs.values())
    with pytest.raises(ValueError, match='run_dir'):
        real_graph('/c.yaml', trainer=True)
    trainer = real_graph('/c.yaml', trainer=True, run_dir='/runs/real')[-1]
    assert (trainer.name, trainer.parameters) == ('trainer', {'run_dir': '/runs/real'})


def test_gazebo_graph_runs_everything_on_sim_time_with_the_trainer():
    specs = gazebo_graph(weights='/w.safetensors', run_dir='/runs/gz')
    names = [spec.name for spec in specs]
    assert names == ['heightmap', 'policy', 'executor', 'trainer']
    assert all(spec.parameters.get('use_sim_time') is True for spec in specs)
    assert specs[3].parameters['run_dir'] == '/runs/gz'
    with pytest.raises(ValueError, match='run_dir'):
        gazebo_graph()
    heightmap = specs[0].parameters['calibration_file']
    assert heightmap.endswith('config/calibration/gazebo_camera.yaml')
    assert [spec.name for spec in gazebo_graph(trainer=False)] == names[:3]
    with pytest.raises(ValueError, match='ur_type'):
        gazebo_graph(ur_type='ur3')
