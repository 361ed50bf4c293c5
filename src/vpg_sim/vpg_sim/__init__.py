"""
MuJoCo UR5e + 2F-85 + RGB-D cell that speaks the real drivers' ROS topics.

Importing the package selects headless EGL rendering unless MUJOCO_GL is already set (osmesa
is the other choice); MuJoCo reads it when first imported, so it is set here, before any module
of the package imports mujoco.
"""

import os

os.environ.setdefault('MUJOCO_GL', 'egl')
os.environ.setdefault('PYOPENGL_PLATFORM', os.environ['MUJOCO_GL'])
