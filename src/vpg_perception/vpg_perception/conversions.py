"""
sensor_msgs/Image and vpg_interfaces/Heightmap <-> numpy: the one place that knows both.

cv_bridge for ROS 2 is not installable everywhere this stack runs (and its ROS 1 copy on PyPI is
broken with numpy 2), so the few encodings the stack uses are converted here directly.
"""

import numpy as np
from sensor_msgs.msg import Image
from vpg_interfaces.msg import Heightmap

from vpg_perception.grid import HeightmapGrid

# encoding -> (dtype, channels)
ENCODINGS = {
    'rgb8': (np.uint8, 3),
    'bgr8': (np.uint8, 3),
    'mono8': (np.uint8, 1),
    'mono16': (np.uint16, 1),
    '16UC1': (np.uint16, 1),
    '32FC1': (np.float32, 1),
}


class ImageConversionError(ValueError):
    """An Image message that cannot be read as the array it claims to hold."""


def image_to_numpy(msg, expected_encoding=None):
    """
    View an Image message as an array: (H, W) for one channel, (H, W, C) otherwise.

    Raises ImageConversionError for an unsupported or unexpected encoding, a zero size, or a
    data buffer that does not match height, step and width. The array is a copy in native
    byte order, safe to modify.
    """
    if expected_encoding is not None and msg.encoding != expected_encoding:
        raise ImageConversionError(
            f'expected encoding {expected_encoding!r}, got {msg.encoding!r}')
    if msg.encoding not in ENCODINGS:
        raise ImageConversionError(
            f'unsupported encoding {msg.encoding!r} (supported: {sorted(ENCODINGS)})')
    dtype, channels = ENCODINGS[msg.encoding]
    dtype = np.dtype(dtype).newbyteorder('>' if msg.is_bigendian else '<')
    if msg.height == 0 or msg.width == 0:
        raise ImageConversionError(f'empty image ({msg.width}x{msg.height})')
    row_bytes = msg.width * channels * dtype.itemsize
    if msg.step < row_bytes or msg.step % dtype.itemsize:
        raise ImageConversionError(
            f'step {msg.step} too small or misaligned for {msg.width} px of {msg.encoding}')
    data = bytes(msg.data) if not isinstance(msg.data, (bytes, bytearray)) else msg.data
    if len(data) != msg.step * msg.height:
        raise ImageConversionError(
            f'data has {len(data)} bytes, expected step*height = {msg.step * msg.height}')
    flat = np.frombuffer(data, dtype=dtype).reshape(msg.height, msg.step // dtype.itemsize)
    array = flat[:, :msg.width * channels].astype(dtype.newbyteorder('='), copy=True)
    return array.reshape(msg.height, msg.width, channels) if channels > 1 else array


def numpy_to_image(array, encoding, header=None):
    """Wrap an (H, W) or (H, W, C) array as an Image message of the given encoding."""
    if encoding not in ENCODINGS:
        raise ImageConversionError(f'unsupported encoding {encoding!r}')
    dtype, channels = ENCODINGS[encoding]
    array = np.asarray(array)
    expected_ndim = 2 if channels == 1 else 3
    if array.ndim != expected_ndim or (channels > 1 and array.shape[2] != channels):
        raise ImageConversionError(
            f'array of shape {array.shape} does not fit encoding {encoding}')
    array = np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder('<'))
    msg = Image(height=array.shape[0], width=array.shape[1], encoding=encoding,
                is_bigendian=0, step=array.strides[0], data=array.tobytes())
    if header is not None:
        msg.header = header
    return msg


def heightmap_to_msg(color, height, grid, header):
    """
    Build a Heightmap message from a colour map (H, W, 3) uint8 and height map (H, W) float32.

    header.frame_id must be the robot base frame the grid is expressed in.
    """
    if color.shape[:2] != height.shape or height.shape != grid.shape:
        raise ValueError(f'colour {color.shape[:2]}, height {height.shape} and grid '
                         f'{grid.shape} shapes differ')
    msg = Heightmap(header=header, resolution=float(grid.resolution),
                    x_min=grid.x_min, x_max=grid.x_max, y_min=grid.y_min, y_max=grid.y_max,
                    z_min=grid.z_min, z_max=grid.z_max)
    msg.color = numpy_to_image(color, 'rgb8', header)
    msg.height = numpy_to_image(height.astype(np.float32, copy=False), '32FC1', header)
    return msg


def heightmap_from_msg(msg):
    """
    Read a Heightmap message: returns (color uint8 (H, W, 3), height float32 (H, W), grid).

    Raises ValueError (ImageConversionError) when encodings, sizes or bounds are inconsistent.
    """
    grid = HeightmapGrid(x_min=msg.x_min, x_max=msg.x_max, y_min=msg.y_min, y_max=msg.y_max,
                         z_min=msg.z_min, z_max=msg.z_max, resolution=msg.resolution)
    color = image_to_numpy(msg.color, 'rgb8')
    height = image_to_numpy(msg.height, '32FC1')
    if color.shape[:2] != height.shape or height.shape != grid.shape:
        raise ValueError(f'heightmap colour {color.shape[:2]}, height {height.shape} and '
                         f'bounds {grid.shape} disagree')
    return color, height, grid


def color_image_to_rgb(msg):
    """
    Read an rgb8 or bgr8 Image as an RGB (H, W, 3) uint8 array.

    Raises ImageConversionError for other encodings or a malformed message.
    """
    if msg.encoding not in ('rgb8', 'bgr8'):
        raise ImageConversionError(
            f'colour image has encoding {msg.encoding!r}; expected rgb8 or bgr8')
    array = image_to_numpy(msg)
    return array[..., ::-1].copy() if msg.encoding == 'bgr8' else array


def depth_image_to_metres(msg):
    """
    Read a depth Image as (H, W) float32 metres, 0 where the camera had no data.

    16UC1 (and mono16) hold millimetres, as realsense2_camera publishes them, 0 meaning no
    data; 32FC1 holds metres and may mark no data with 0 or NaN. Raises
    ImageConversionError for other encodings or a malformed message.
    """
    if msg.encoding in ('16UC1', 'mono16'):
        return image_to_numpy(msg).astype(np.float32) * np.float32(0.001)
    if msg.encoding == '32FC1':
        return image_to_numpy(msg)
    raise ImageConversionError(
        f'depth image has encoding {msg.encoding!r}; expected 16UC1 (mm) or 32FC1 (m)')
