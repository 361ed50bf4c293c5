import os
import sys

# Shared test helpers (synthetic_scenes) sit beside the tests.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
