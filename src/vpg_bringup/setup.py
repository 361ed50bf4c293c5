from glob import glob

from setuptools import find_packages, setup

package_name = 'vpg_bringup'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/config', glob('config/*.yaml')),
        ('share/' + package_name + '/config/drivers', glob('config/drivers/*.yaml')),
        ('share/' + package_name + '/config/calibration', glob('config/calibration/*.yaml')),
        ('share/' + package_name + '/config/security', glob('config/security/*.xml')),
        ('share/' + package_name + '/config/security/common',
         glob('config/security/common/*.xml')),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/rviz', glob('rviz/*.rviz')),
        ('share/' + package_name + '/foxglove', glob('foxglove/*.json')),
        ('share/' + package_name + '/urdf', glob('urdf/*.xacro')),
        ('share/' + package_name + '/worlds', glob('worlds/*.sdf')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='vpg_ros2 maintainers',
    maintainer_email='dev@example.com',
    description=(
        'Graph descriptions, launch files, parameters and RViz configuration for the real '
        'cell, Gazebo and MuJoCo.'
    ),
    license='Apache-2.0',
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'record = vpg_bringup.recorder_node:main',
            'viewer = vpg_bringup.viewer_node:main',
            'preflight = vpg_bringup.preflight:main',
            'calibrate = vpg_bringup.calibration_tool:main',
        ],
    },
)
