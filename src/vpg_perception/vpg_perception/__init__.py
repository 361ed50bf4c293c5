"""Heightmaps from the RealSense: RGB-D frames to VPG colour/height maps, and calibration."""
