"""sesguard as a newcomer installs it: a wheel built from the tree, installed into a fresh virtual
environment (no editable install, no checkout on the path), running `sesguard demo` from an empty folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from bot import __version__
from tests.support.records import REPO

pytestmark = [pytest.mark.processes, pytest.mark.slow]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of the tree as git sees it: a `build/` folder left by an earlier build would
    otherwise carry modules that no longer exist into the wheel."""
    tree = tmp_path_factory.mktemp("tree")
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           check=True, capture_output=True, text=True).stdout.splitlines()
    for name in files:
        if (REPO / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, tree / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), str(tree)], check=True, capture_output=True, timeout=300)
    (built,) = out.glob("sesguard-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding only the wheel; its dependencies are borrowed from this environment through a
    path entry (not a site dir, so this environment's editable install of sesguard stays out of it)."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
                    "--no-deps", str(wheel)], check=True, capture_output=True, timeout=300)
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", purelib],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "borrowed-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv


def run(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / "sesguard"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=180, env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(cwd)})


def test_the_wheel_carries_the_demo_trail_and_the_migrations(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    trail = [name for name in names if name.startswith("bot/cli/demo/trail/")]
    assert len(trail) == sum(1 for path in (REPO / "bot" / "cli" / "demo" / "trail").rglob("*") if path.is_file())
    assert "bot/store/migrations/env.py" in names
    assert any(name.startswith("bot/store/migrations/versions/") for name in names)
    assert not any(name.startswith("tests/") for name in names)


def test_an_installed_sesguard_runs_the_demo_from_an_empty_folder(installed, tmp_path):
    done = run(installed, "demo", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "scanned " in done.stdout and " signals, 0 bad records skipped" in done.stdout
    assert "https://app.slack.com/block-kit-builder/#" in done.stdout
    located = subprocess.run([str(installed / "bin" / "python"), "-c", "import bot; print(bot.__file__)"],
                             cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert located.startswith(str(installed)), located
    assert list(tmp_path.iterdir()) == []  # the demo's store is temporary: nothing left behind


def test_version(installed, tmp_path):
    done = run(installed, "--version", cwd=tmp_path)
    assert (done.returncode, done.stdout.strip()) == (0, f"sesguard {__version__}")
