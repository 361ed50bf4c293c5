"""Online Q-learning from executed transitions, with crash-safe replay and weight updates."""
