"""
The SROS2 policy (config/security/vpg_policy.xml), checked statically.

The Fast DDS of the PyPI wheels has no security plugins, so no keystore is made and nothing
runs under it here. The policy is validated the way sros2's load_policy does it (XInclude,
then XML Schema validation with lxml) against sros2's published schema, vendored in
test/sros2_schema/ with its licence; every enclave it names must be one the launch assigns (or
one of the two tools' enclaves), and vice versa; and a small evaluator of its rules checks who
may move the arm, command the gripper, serve and call /pick_all and publish weights.
"""

from fnmatch import fnmatchcase
from pathlib import Path
import sys

from lxml import etree
import pytest
from vpg_bringup.graph import enclave

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_launch_files import LaunchRun  # noqa: E402, I100  (the stand-ins for launch)

PACKAGE_DIR = Path(__file__).resolve().parents[1]
POLICY = PACKAGE_DIR / 'config' / 'security' / 'vpg_policy.xml'
SCHEMA_DIR = Path(__file__).resolve().parent / 'sros2_schema'
TOOL_ENCLAVES = {enclave('operator'), enclave('preflight')}
"""Assigned outside the launch: the user's /pick_all client and `preflight`."""

TRAJECTORY_TOPIC = '/scaled_joint_trajectory_controller/joint_trajectory'
TRAJECTORY_ACTION = '/scaled_joint_trajectory_controller/follow_joint_trajectory'
GRIPPER_ACTION = '/robotiq_gripper_controller/gripper_cmd'


class _LocalSchemas(etree.Resolver):
    """Serve the W3C xml.xsd that policy.xsd imports from the vendored copy (no network)."""

    def resolve(self, url, public_id, context):
        if url.endswith('/xml.xsd'):
            return self.resolve_filename(str(SCHEMA_DIR / 'xml.xsd'), context)
        return None


def policy_schema():
    parser = etree.XMLParser()
    parser.resolvers.add(_LocalSchemas())
    return etree.XMLSchema(etree.parse(str(SCHEMA_DIR / 'policy.xsd'), parser))


def load_policy(path=POLICY):
    """Parse, resolve XIncludes and validate, as sros2.policy.load_policy does."""
    tree = etree.parse(str(path))
    tree.xinclude()
    policy_schema().assertValid(tree)
    return tree


def enclaves(tree):
    return {e.get('path'): e for e in tree.getroot().iter('enclave')}


def permitted(enclave_element, kind, name):
    """
    Whether an enclave's rules allow `kind` on a fully qualified name.

    kind: ('topics', 'publish' | 'subscribe'), ('services', 'request' | 'reply') or
    ('actions', 'call' | 'execute'). An action call is also a request to its send_goal
    service, so service rules count for it. DENY wins over ALLOW (sros2's permissions.xsl
    emits deny rules first); nothing matching means denied.
    """
    checks = [kind + (name,)]
    if kind == ('actions', 'call'):
        checks.append(('services', 'request', f'{name}/_action/send_goal'))
    if kind == ('actions', 'execute'):
        checks.append(('services', 'reply', f'{name}/_action/send_goal'))
    verdicts = []
    for group, qualifier, target in checks:
        item = group[:-1]
        for rule in ('DENY', 'ALLOW'):
            for element in enclave_element.iter(group):
                if element.get(qualifier) == rule and any(
                        fnmatchcase(target, e.text.strip()) for e in element.iter(item)):
                    verdicts.append(rule)
                    break
            else:
                continue
            break
    return 'DENY' not in verdicts and 'ALLOW' in verdicts


def who_may(tree, kind, name):
    return {path for path, element in enclaves(tree).items() if permitted(element, kind, name)}


def launch_enclaves(**arguments):
    """Enclaves real.launch.py assigns: --enclave of nodes, ROS_SECURITY_ENCLAVE_OVERRIDE."""
    run = LaunchRun('real.launch.py', robot_ip='10.0.0.2', calibration_file='/c.yaml',
                    **arguments)
    assigned = set()
    for node in run.nodes():
        ros_arguments = node.get('ros_arguments', [])
        if '--enclave' in ros_arguments:
            assigned.add(ros_arguments[ros_arguments.index('--enclave') + 1])
    for action in run.of_type('launch.actions', 'SetEnvironmentVariable'):
        if action.args[0] == 'ROS_SECURITY_ENCLAVE_OVERRIDE':
            assigned.add(action.args[1])
    return run, assigned


def test_policy_validates_against_sros2s_schema():
    tree = load_policy()
    assert tree.getroot().get('version') == '0.2.0'
    assert len(enclaves(tree)) >= 8


def test_schema_rejects_a_broken_policy(tmp_path):
    broken = tmp_path / 'broken.xml'
    broken.write_text(POLICY.read_text().replace('publish="ALLOW"', 'publish="YES"', 1))
    (tmp_path / 'common').mkdir()
    (tmp_path / 'common' / 'node.xml').write_text(
        (POLICY.parent / 'common' / 'node.xml').read_text())
    with pytest.raises(etree.DocumentInvalid):
        load_policy(broken)


def test_every_enclave_of_the_policy_is_assigned_and_every_assigned_one_has_rules():
    _, assigned = launch_enclaves(rviz='true', trainer='true', run_dir='/r',
                                  launch_move_group='true')
    named = set(enclaves(load_policy()))
    assert assigned <= named, assigned - named
    assert named - assigned == TOOL_ENCLAVES
    from vpg_bringup.preflight import ENCLAVE
    assert ENCLAVE == enclave('preflight')


def test_every_process_the_launch_starts_runs_in_an_enclave():
    run, _ = launch_enclaves(rviz='true', trainer='true', run_dir='/r', launch_move_group='true')
    for node in run.nodes('vpg_') + run.nodes('rviz2'):
        assert '--enclave' in node.get('ros_arguments', []), node['name']
    group = getattr(run.modules['launch.actions'], 'GroupAction')
    setter = getattr(run.modules['launch.actions'], 'SetEnvironmentVariable')
    include = getattr(run.modules['launch.actions'], 'IncludeLaunchDescription')
    node = getattr(run.modules['launch_ros.actions'], 'Node')
    # The drivers (included launch files, the gripper spawner) only inside enclave groups.
    top_level = [a for a in run.actions if isinstance(a, (include, node))]
    assert all(a.kwargs.get('package', '').startswith(('vpg_', 'rviz2')) for a in top_level
               if isinstance(a, node))
    assert not [a for a in top_level if isinstance(a, include)]
    groups = [a for a in run.actions if isinstance(a, group)]
    assert len(groups) == 3
    for g in groups:
        first, *rest = g.args[0]
        assert g.kwargs.get('scoped') is True and isinstance(first, setter)
        assert first.args[0] == 'ROS_SECURITY_ENCLAVE_OVERRIDE' and rest


@pytest.mark.parametrize('kind, name, allowed', [
    (('topics', 'publish'), TRAJECTORY_TOPIC, {'executor'}),
    (('actions', 'call'), TRAJECTORY_ACTION, {'executor', 'move_group'}),
    (('actions', 'call'), GRIPPER_ACTION, {'executor', 'preflight'}),
    (('actions', 'execute'), '/pick_all', {'executor'}),
    (('actions', 'call'), '/pick_all', {'operator'}),
    (('topics', 'publish'), '/model_updates', {'trainer'}),
    (('services', 'request'), '/execute_primitive', set()),
    (('topics', 'subscribe'), '/model_updates', {'policy', 'arm', 'move_group'}),
])
def test_who_may_move_command_and_publish_weights(kind, name, allowed):
    assert who_may(load_policy(), kind, name) == {enclave(e) for e in allowed}
