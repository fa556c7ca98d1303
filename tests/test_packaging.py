"""Packaging: one installed namespace (`healthsync`), every folder of ours in it, the sandbox kept out of production."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAPPED = ("config", "connectors", "scoring", "insights", "writeback", "sync")


def _setuptools_table(pyproject: Path) -> dict:
    return tomllib.loads(pyproject.read_text())["tool"]["setuptools"]


def _package_folders(top: str, namespace: str) -> set[str]:
    """Every folder under `top` that is a package (or holds package data), as dotted names under `namespace`."""
    found = set()
    for init in (ROOT / top).rglob("__init__.py"):
        relative = init.parent.relative_to(ROOT / top)
        found.add(".".join((namespace, *relative.parts)))
    return found


def test_every_package_folder_is_listed_under_the_namespace() -> None:
    listed = set(_setuptools_table(ROOT / "pyproject.toml")["packages"])
    expected = {"healthsync"}
    for top in MAPPED:
        expected |= _package_folders(top, f"healthsync.{top}")
    assert expected - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert all(name == "healthsync" or name.startswith("healthsync.") for name in listed)
    sandbox_listed = set(_setuptools_table(ROOT / "sandbox" / "pyproject.toml")["packages"])
    assert _package_folders("sandbox", "healthsync.sandbox") - sandbox_listed == set()


@pytest.mark.slow
def test_the_wheel_installs_only_the_healthsync_package(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("healthsync-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"healthsync"}
    assert not [n for n in names if n.startswith("healthsync/sandbox/")], "the emulators belong to healthsync-sandbox"
    assert "healthsync/sync/store/migrations/versions/0001_initial.py" in names
    assert "healthsync/config/presets/default.yaml" in names
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    runtime = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    for name in ("werkzeug", "trustme", "pyjwt", "psycopg", "python-dateutil", "healthsync-sandbox"):
        assert not [line for line in runtime if name in line.lower()], f"{name} must not be a runtime dependency"


def _run_isolated(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_production_code_imports_no_emulator_and_no_sandbox_dependency() -> None:
    code = (
        "import sys, importlib\n"
        "import healthsync.sync.cli, healthsync.sync.daemon, healthsync.sync.pipeline\n"
        "for m in ('check','db','connectors','pull','identity','score','insights','writeback','daemon','demo','sandbox'):\n"
        "    importlib.import_module('healthsync.sync.commands.' + m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('werkzeug', 'trustme', 'jwt')"
        " or m.startswith('healthsync.sandbox'))\n"
        "print(bad)\n"
    )
    done = _run_isolated(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


BLOCK_SANDBOX = (
    "import sys\n"
    "class Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'healthsync.sandbox' or name.startswith('healthsync.sandbox.') or name == 'werkzeug':\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
    "sys.meta_path.insert(0, Block())\n"
    "from healthsync.sync.cli import main\n"
)


@pytest.mark.parametrize("args", [["demo"], ["sandbox", "serve"], ["sandbox", "scenarios"]])
def test_sandbox_commands_without_the_extra_say_how_to_install_it(args: list[str]) -> None:
    done = _run_isolated(BLOCK_SANDBOX + f"sys.exit(main({args!r}))")
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "pip install 'healthsync[sandbox]'" in lines[0]
    assert "Traceback" not in done.stderr


def test_python_dash_m_healthsync_is_the_console_script() -> None:
    done = subprocess.run([sys.executable, "-m", "healthsync", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Usage: healthsync" in done.stdout
