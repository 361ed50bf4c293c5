"""The QoS of the topics that vpg's own nodes publish and subscribe, one profile per topic."""

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

TRANSITIONS_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL,
                             history=HistoryPolicy.KEEP_LAST)
"""
`transitions` (executor -> trainer): reliable, none may be dropped; transient local, so a
trainer that (re)starts late still receives the last 100 each executor published (the replay
store drops the ones it already holds). 100 transitions are about 35 MB of heightmaps kept by
each executor; the trainer's callback only stores them, so its queue never holds more.
"""

MODEL_UPDATES_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
"""`model_updates` (trainer -> policies): reliable; the newest version is the one that counts."""
