"""The project folder on sys.path (pyproject's pythonpath does it for pytest; this covers other runners)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
