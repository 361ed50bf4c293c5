"""The QoS of the topics that vpg's own nodes publish and subscribe, one profile per topic."""

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

TRANSITIONS_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL,
                             history=HistoryPolicy.KEEP_LAST)
"""
`transitions`, the executors' publishers: reliable, none may be dropped; transient local, so a
trainer that (re)starts late still receives the last 100 each executor published (the replay
store drops the ones it already holds). 100 transitions are about 35 MB of heightmaps kept by
each executor.
"""

TRANSITIONS_SUBSCRIPTION_QOS = QoSProfile(depth=1000, reliability=TRANSITIONS_QOS.reliability,
                                          durability=TRANSITIONS_QOS.durability,
                                          history=TRANSITIONS_QOS.history)
"""
`transitions`, the trainer's subscription: the publishers' profile with a deeper queue, so
that transitions from several cells wait rather than drop while the trainer is busy.
"""

MODEL_UPDATES_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
"""`model_updates` (trainer -> policies): reliable; the newest version is the one that counts."""
