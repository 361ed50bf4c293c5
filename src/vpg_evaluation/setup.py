from glob import glob

from setuptools import find_packages, setup

package_name = 'vpg_evaluation'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/test_cases',
         glob('test_cases/*.txt') + ['test_cases/README.md']),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='vpg_ros2 maintainers',
    maintainer_email='dev@example.com',
    description=(
        "VPG's evaluation in the MuJoCo cell: random and challenging test cases through the "
        'node graph, completion, grasp success and action efficiency as VPG computes them.'
    ),
    license='Apache-2.0',
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'evaluate = vpg_evaluation.evaluate:main',
        ],
    },
)
