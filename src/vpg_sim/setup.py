from glob import glob

from setuptools import find_packages, setup

package_name = 'vpg_sim'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={package_name: ['data/*.json', 'data/VPG_LICENSE']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/config', glob('config/*.yaml')),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='vpg_ros2 maintainers',
    maintainer_email='dev@example.com',
    description=(
        'MuJoCo UR5e + 2F-85 + RGB-D cell speaking the topics of ur_robot_driver, '
        'realsense2_camera and the gripper driver.'
    ),
    license='Apache-2.0',
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'sim = vpg_sim.sim_node:main',
        ],
    },
)
