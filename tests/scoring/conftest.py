"""Make `import scoring` find the package even when pytest is started as `.venv/bin/pytest`: the root
conftest puts tests/ on sys.path, where tests/scoring would otherwise pass for a namespace package."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = str(Path(__file__).resolve().parents[2])
if REPO not in sys.path:
    sys.path.insert(0, REPO)
if "scoring" in sys.modules and getattr(sys.modules["scoring"], "__file__", None) is None:
    del sys.modules["scoring"]
