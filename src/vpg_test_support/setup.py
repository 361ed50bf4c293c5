from setuptools import find_packages, setup

package_name = 'vpg_test_support'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='vpg_ros2 maintainers',
    maintainer_email='dev@example.com',
    description=('Helpers for the tests and benchmarks: cell client, scripted motions, '
                 'camera calibration, synthetic RGB-D frames, VPG reference heightmap.'),
    license='Apache-2.0',
    extras_require={'test': ['pytest']},
)
