"""Every node module leaves signals, stack dumps and spinning to vpg_common.node_runner."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2]
# A node module: *_node.py with a main() (a node process); spun_node.py is a client helper.
NODE_MODULES = sorted(path for path in SRC.glob('vpg_*/vpg_*/*_node.py')
                      if '\ndef main(' in path.read_text(encoding='utf-8'))

# What only the runner may do: install signal handlers, choose rclpy's, register stack dumps,
# init rclpy for a process.
FORBIDDEN_CALLS = {('signal', 'signal'), ('faulthandler', 'register'), ('rclpy', 'init')}


def calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(
                node.func.value, ast.Name):
            yield node.func.value.id, node.func.attr, node.lineno


def test_the_node_modules_are_found():
    names = {path.name for path in NODE_MODULES}
    assert {'policy_node.py', 'heightmap_node.py', 'executor_node.py', 'sim_node.py',
            'trainer_node.py', 'recorder_node.py', 'viewer_node.py'} <= names


@pytest.mark.parametrize('path', NODE_MODULES, ids=lambda path: path.name)
def test_a_node_module_does_not_handle_signals_itself(path):
    source = path.read_text(encoding='utf-8')
    tree = ast.parse(source)
    found = [f'{module}.{name} (line {line})' for module, name, line in calls(tree)
             if (module, name) in FORBIDDEN_CALLS]
    assert not found, f'{path.name} does what vpg_common.node_runner does: {found}'
    assert 'SignalHandlerOptions' not in source, f'{path.name} chooses rclpy signal handling'
    mains = [node for node in tree.body if isinstance(node, ast.FunctionDef)
             and node.name == 'main']
    assert mains, f'{path.name} has no main()'
    called = {node.func.id for node in ast.walk(mains[0])
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert 'run_node' in called, f'{path.name}: main() does not use run_node'
