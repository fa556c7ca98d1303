"""insights stays pure like scoring: importing it loads no config, store, YAML, pydantic or scikit-learn (fit
imports scikit-learn when it runs), and no module of it reads the clock, the disk or the network."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import pkgutil, importlib, sys\n"
    "import healthsync.insights as insights\n"
    "for module in pkgutil.iter_modules(insights.__path__):\n"
    "    importlib.import_module('healthsync.insights.' + module.name)\n"
    "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'yaml', 'sqlalchemy', 'sklearn',"
    " 'numpy', 'requests') or m.startswith(('healthsync.config', 'healthsync.sync', 'healthsync.connectors')))))\n"
)
IMPURE = re.compile(r"\b(datetime\.now|date\.today|time\.time|time\.monotonic|open\(|Path\(|socket|urllib|requests)")


def test_insights_imports_nothing_impure():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == []


def test_insights_and_scoring_read_no_clock_disk_or_network():
    for package in ("insights", "scoring"):
        for path in (ROOT / package).glob("*.py"):
            assert not IMPURE.findall(path.read_text()), path
