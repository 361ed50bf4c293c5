"""rviz/vpg.rviz: valid YAML, the displays the issue asks for, only topics someone publishes."""

import ast
from pathlib import Path

import yaml

PACKAGE_DIR = Path(__file__).resolve().parents[1]
SRC_DIR = PACKAGE_DIR.parent
RVIZ = PACKAGE_DIR / 'rviz' / 'vpg.rviz'
# Published outside this workspace: robot_state_publisher (ur_robot_driver, gazebo.launch.py).
EXTERNAL_TOPICS = {'/robot_description'}


def published_topics():
    """Absolute names of every topic our nodes create a publisher for (root namespace)."""
    topics = set()
    for path in SRC_DIR.glob('*/*/*.py'):
        tree = ast.parse(path.read_text())
        constants = {target.id: node.value.value for node in tree.body
                     if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                     for target in node.targets if isinstance(target, ast.Name)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == 'create_publisher' and len(node.args) >= 2):
                topic = node.args[1]
                if isinstance(topic, ast.Constant) and isinstance(topic.value, str):
                    topics.add(topic.value)
                elif isinstance(topic, ast.Name) and topic.id in constants:
                    topics.add(constants[topic.id])
    bridge = yaml.safe_load((PACKAGE_DIR / 'config' / 'drivers' / 'gz_bridge.yaml').read_text())
    topics |= {entry['ros_topic_name'] for entry in bridge}
    return {t if t.startswith('/') else '/' + t for t in topics} | EXTERNAL_TOPICS


def displays():
    config = yaml.safe_load(RVIZ.read_text())
    return config, config['Visualization Manager']['Displays']


def topic_of(display):
    for key in ('Topic', 'Description Topic'):
        if key in display:
            return display[key]['Value']
    return None


def test_rviz_config_shows_camera_heightmaps_q_heatmaps_markers_robot_and_tf():
    config, shown = displays()
    assert config['Visualization Manager']['Global Options']['Fixed Frame'] == 'base'
    by_class = {}
    for display in shown:
        by_class.setdefault(display['Class'], []).append(topic_of(display))
    assert set(by_class['rviz_default_plugins/Image']) == {
        'camera/camera/color/image_raw', 'heightmap/color', 'heightmap/height_colored',
        'q_heatmaps/push', 'q_heatmaps/grasp'}
    assert by_class['rviz_default_plugins/MarkerArray'] == ['action_markers']
    assert by_class['rviz_default_plugins/RobotModel'] == ['robot_description']
    assert 'rviz_default_plugins/TF' in by_class


def test_rviz_topics_are_relative_and_published_by_some_node():
    publishers = published_topics()
    assert {'/heightmap/color', '/q_heatmaps/push', '/action_markers',
            '/camera/camera/color/image_raw'} <= publishers
    for display in displays()[1]:
        topic = topic_of(display)
        if topic is None:
            continue
        assert not topic.startswith('/'), f'{topic}: relative, so a namespaced RViz follows'
        assert '/' + topic in publishers, f'nothing publishes {topic}'


def test_the_heightmap_type_itself_is_not_shown():
    # vpg_interfaces/Heightmap has no RViz display; its images are published separately.
    assert 'heightmap' not in {topic_of(display) for display in displays()[1]}
