"""Image/Heightmap message <-> numpy conversions and the heightmap grid."""

import numpy as np
import pytest
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vpg_perception.conversions import (color_image_to_rgb, depth_image_to_metres,
                                        heightmap_from_msg, heightmap_to_msg,
                                        image_to_numpy, ImageConversionError, numpy_to_image)
from vpg_perception.grid import HeightmapGrid


@pytest.mark.parametrize('encoding,dtype,shape', [
    ('rgb8', np.uint8, (4, 5, 3)), ('16UC1', np.uint16, (4, 5)), ('32FC1', np.float32, (4, 5))])
def test_image_round_trip(encoding, dtype, shape):
    rng = np.random.default_rng(0)
    array = (rng.random(shape) * 1000).astype(dtype)
    back = image_to_numpy(numpy_to_image(array, encoding), encoding)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, array)


def test_padded_rows_and_big_endian_are_read():
    array = np.arange(12, dtype=np.uint16).reshape(3, 4)
    padded = np.zeros((3, 6), dtype='>u2')
    padded[:, :4] = array
    msg = Image(height=3, width=4, encoding='16UC1', is_bigendian=1, step=12,
                data=padded.tobytes())
    np.testing.assert_array_equal(image_to_numpy(msg), array)


@pytest.mark.parametrize('msg,match', [
    (Image(height=2, width=2, encoding='rgb8', step=6, data=bytes(11)), 'bytes'),
    (Image(height=0, width=0, encoding='rgb8', step=0, data=b''), 'empty'),
    (Image(height=2, width=2, encoding='yuv422', step=4, data=bytes(8)), 'unsupported'),
    (Image(height=2, width=2, encoding='rgb8', step=3, data=bytes(6)), 'step'),
])
def test_bad_images_raise(msg, match):
    with pytest.raises(ImageConversionError, match=match):
        image_to_numpy(msg)


def test_wrong_expected_encoding_raises():
    msg = numpy_to_image(np.zeros((2, 2), np.uint16), '16UC1')
    with pytest.raises(ImageConversionError, match='expected encoding'):
        image_to_numpy(msg, 'rgb8')


def test_heightmap_round_trip():
    grid = HeightmapGrid()
    assert grid.shape == (224, 224)
    rng = np.random.default_rng(1)
    color = rng.integers(0, 255, (224, 224, 3), dtype=np.uint8)
    height = rng.random((224, 224), dtype=np.float32) * 0.1
    msg = heightmap_to_msg(color, height, grid, Header(frame_id='base_link'))
    color2, height2, grid2 = heightmap_from_msg(msg)
    np.testing.assert_array_equal(color2, color)
    np.testing.assert_array_equal(height2, height)
    assert grid2 == HeightmapGrid(resolution=np.float32(0.002))


def test_heightmap_with_wrong_size_is_rejected():
    grid = HeightmapGrid()
    msg = heightmap_to_msg(np.zeros((224, 224, 3), np.uint8), np.zeros((224, 224), np.float32),
                           grid, Header())
    msg.height = numpy_to_image(np.zeros((100, 224), np.float32), '32FC1')
    with pytest.raises(ValueError, match='disagree'):
        heightmap_from_msg(msg)


def test_grid_pixel_point_round_trip_is_exact():
    grid = HeightmapGrid()
    rows, cols = np.meshgrid(np.arange(224), np.arange(224), indexing='ij')
    points = grid.pixel_to_point(rows, cols, 0.05)
    assert points.shape == (224, 224, 3)
    row2, col2 = grid.point_to_pixel(points)
    np.testing.assert_array_equal(row2, rows)
    np.testing.assert_array_equal(col2, cols)
    np.testing.assert_allclose(points[0, 0], [-0.723, -0.223, 0.0499])


@pytest.mark.parametrize('kwargs', [{'resolution': 0.0}, {'x_max': -1.0},
                                    {'z_min': float('nan')}])
def test_invalid_grid_raises(kwargs):
    with pytest.raises(ValueError):
        HeightmapGrid(**kwargs)


def test_colour_and_depth_readers():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    np.testing.assert_array_equal(color_image_to_rgb(numpy_to_image(rgb, 'rgb8')), rgb)
    np.testing.assert_array_equal(
        color_image_to_rgb(numpy_to_image(rgb[..., ::-1], 'bgr8')), rgb)
    with pytest.raises(ImageConversionError, match='rgb8 or bgr8'):
        color_image_to_rgb(numpy_to_image(np.zeros((2, 3), np.uint8), 'mono8'))
    millimetres = np.array([[0, 750], [1000, 65535]], dtype=np.uint16)
    metres = depth_image_to_metres(numpy_to_image(millimetres, '16UC1'))
    assert metres.dtype == np.float32
    np.testing.assert_allclose(metres, [[0.0, 0.75], [1.0, 65.535]], rtol=1e-6)
    floats = np.array([[np.nan, 0.5]], dtype=np.float32)
    np.testing.assert_array_equal(depth_image_to_metres(numpy_to_image(floats, '32FC1')),
                                  floats)
    with pytest.raises(ImageConversionError, match='16UC1'):
        depth_image_to_metres(numpy_to_image(rgb, 'rgb8'))
