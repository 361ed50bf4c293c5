"""
The parameters of a node that reads the camera's colour + aligned depth pair, in one table.

The heightmap node and the calibrate tool both subscribe to the RealSense colour image, the
depth aligned to it and the colour camera_info, and pair frames by stamp (frame_sync); both
declare these entries from here.
"""

from vpg_common.driver_names import COLOR_INFO_TOPIC, COLOR_TOPIC, DEPTH_TOPIC
from vpg_common.parameters import float_range

CAMERA_INPUT_PARAMETERS = (
    ('max_stamp_difference', 0.02,
     'Colour and depth frames pair when their stamps differ by at most this, seconds.',
     float_range(0.0, 1.0)),
    ('color_topic', COLOR_TOPIC, 'Colour image (rgb8 or bgr8).', {}),
    ('depth_topic', DEPTH_TOPIC,
     'Depth aligned to colour (16UC1 millimetres or 32FC1 metres).', {}),
    ('camera_info_topic', COLOR_INFO_TOPIC,
     'camera_info of the colour stream (its K is used for the aligned depth too).', {}),
)
"""(name, default, description, constraints) entries for vpg_common.parameters.declare."""
