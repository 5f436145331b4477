"""Native unit tests of the Python SDK and the Python plugins: the system python3, no
component toolchain (the worker's imports are faked). Run from plugins/python:

    python3 -m unittest discover -s tests -t .      # or: python3 -m pytest tests
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(PYTHON_DIR))
DATA = os.path.join(REPO, "data")

for path in (PYTHON_DIR, os.path.join(PYTHON_DIR, "features")):
    if path not in sys.path:
        sys.path.insert(0, path)
