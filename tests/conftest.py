import sys
from pathlib import Path

# tests share small helper modules (zoo_support.py) that live beside them
sys.path.insert(0, str(Path(__file__).parent))
