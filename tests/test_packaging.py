"""The package as users install it: version, entry points, the README's testing example, sdist and wheel."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import isales_async

ROOT = Path(__file__).resolve().parent.parent


def project_version() -> str:
    """The version declared in pyproject.toml's [project] table."""
    match = re.search(r'^\[project\]$.*?^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.M | re.S)
    assert match, "no version in pyproject.toml"
    return match.group(1)


def run_pytest(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A pytest run of its own in ``directory``, as a user would start it there."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider", *args],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
    )


def summary(run: subprocess.CompletedProcess[str]) -> str:
    """pytest's closing line without the '=' border and the duration, e.g. '2 passed'."""
    last = run.stdout.strip().splitlines()[-1]
    return re.sub(r" in [\d.]+s( \([\d:]+\))?$", "", last.strip("= "))


# -- version ----------------------------------------------------------------------------


def test_version_is_the_installed_distributions() -> None:
    assert isales_async.__version__ == importlib.metadata.version("isales-async") == project_version()


def test_isales_version_prints_the_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "isales_async", "--version"], capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, f"isales {isales_async.__version__}\n", "")


# -- the pytest plugin --------------------------------------------------------------------


def test_the_fixtures_load_through_the_pytest11_entry_point(request: pytest.FixtureRequest) -> None:
    (entry,) = [e for e in importlib.metadata.entry_points(group="pytest11") if e.name == "isales_async"]
    assert entry.value == "isales_async.testing.pytest_plugin"
    plugin = request.config.pluginmanager.get_plugin("isales_async")
    assert plugin is not None and plugin.__name__ == "isales_async.testing.pytest_plugin"


def readme_testing_example() -> dict[str, str]:
    """The files of the README's "Testing your code against the fake server" section, by the name in their first line."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Testing your code against the fake server", 1)[1].split("\n## ", 1)[0]
    files = {}
    for body in re.findall(r"^```(?:toml|python)\n(.*?)^```$", section, re.M | re.S):
        first, _, _ = body.partition("\n")
        files[first.removeprefix("# ").strip()] = body
    return files


def test_the_readme_example_is_a_config_and_a_test_file() -> None:
    files = readme_testing_example()
    assert sorted(files) == ["pyproject.toml", "test_with_the_fake.py"]


@pytest.mark.parametrize("mode", [None, "strict", "auto"])
def test_the_readme_testing_example_runs_as_written(tmp_path: Path, mode: str | None) -> None:
    for name, body in readme_testing_example().items():
        (tmp_path / name).write_text(body)
    if mode is not None:  # None: pytest-asyncio's default, strict
        with (tmp_path / "pyproject.toml").open("a") as config:
            config.write(f'asyncio_mode = "{mode}"\n')
    run = run_pytest(tmp_path)
    assert (run.returncode, summary(run)) == (0, "3 passed"), run.stdout + run.stderr


def test_without_pytest_asyncio_the_fixtures_say_what_they_need(tmp_path: Path) -> None:
    stub = tmp_path / "hide" / "pytest_asyncio"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('pytest-asyncio is not installed')\n")
    (tmp_path / "test_it.py").write_text(
        "def test_unrelated():\n    pass\n\n\ndef test_wants_the_server(isales_server):\n    pass\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:asyncio", "-p", "no:randomly", "-p", "no:cacheprovider", "-rE"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "hide")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (run.returncode, summary(run)) == (1, "1 passed, 1 error"), run.stdout + run.stderr
    assert "the isales_server and isales_client fixtures need pytest-asyncio" in run.stdout


# -- sdist and wheel ----------------------------------------------------------------------

NEVER_SHIPPED = re.compile(
    r"(^|/)(\.coverage[^/]*|coverage\.xml|htmlcov/.*|__pycache__/.*|.*\.pyc|.*\.journal\.sqlite.*)$"
)


def wheel_problems(names: list[str], version: str) -> list[str]:
    """What is wrong with a wheel holding ``names``: what it lacks, and what it must not hold."""
    dist_info = f"isales_async-{version}.dist-info/"
    required = ["isales_async/__init__.py", "isales_async/py.typed", dist_info + "licenses/LICENSE"]
    problems = [f"missing {name}" for name in required if name not in names]
    problems += [f"outside the package: {n}" for n in names if not n.startswith(("isales_async/", dist_info))]
    problems += [f"never shipped: {n}" for n in names if NEVER_SHIPPED.search(n)]
    return problems


def sdist_problems(names: list[str], version: str) -> list[str]:
    """What is wrong with an sdist holding ``names`` (all under ``isales_async-<version>/``)."""
    root = f"isales_async-{version}/"
    required = ["LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "isales_async/py.typed"]
    problems = [f"missing {name}" for name in required if root + name not in names]
    problems += [f"outside {root}: {n}" for n in names if not n.startswith(root)]
    problems += [f"never shipped: {n}" for n in names if NEVER_SHIPPED.search(n)]
    return problems


def test_the_content_checks_catch_what_they_look_for() -> None:
    good_wheel = ["isales_async/__init__.py", "isales_async/py.typed", "isales_async-1.0.dist-info/licenses/LICENSE"]
    assert wheel_problems(good_wheel, "1.0") == []
    bad_wheel = [*good_wheel[1:], "tests/test_x.py", "isales_async/__pycache__/cli.cpython-311.pyc", ".coverage"]
    assert wheel_problems(bad_wheel, "1.0") == [
        "missing isales_async/__init__.py",
        "outside the package: tests/test_x.py",
        "outside the package: .coverage",
        "never shipped: isales_async/__pycache__/cli.cpython-311.pyc",
        "never shipped: .coverage",
    ]
    root = "isales_async-1.0/"
    good_sdist = [root + n for n in ("LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "isales_async/py.typed")]
    assert sdist_problems(good_sdist, "1.0") == []
    bad_sdist = [*good_sdist[1:], root + ".coverage", root + "htmlcov/index.html", "elsewhere/x"]
    assert sdist_problems(bad_sdist, "1.0") == [
        "missing LICENSE",
        "outside isales_async-1.0/: elsewhere/x",
        "never shipped: isales_async-1.0/.coverage",
        "never shipped: isales_async-1.0/htmlcov/index.html",
    ]


@pytest.mark.build
def test_sdist_and_wheel_contents(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    version = project_version()
    (wheel,) = tmp_path.glob("*.whl")
    (sdist,) = tmp_path.glob("*.tar.gz")
    with zipfile.ZipFile(wheel) as archive:
        wheel_names = archive.namelist()
        metadata = archive.read(f"isales_async-{version}.dist-info/METADATA").decode()
        entry_points = archive.read(f"isales_async-{version}.dist-info/entry_points.txt").decode()
    with tarfile.open(sdist) as archive:
        sdist_names = [m.name + ("/" if m.isdir() else "") for m in archive.getmembers()]
    assert wheel_problems(wheel_names, version) == [], wheel_names
    assert sdist_problems(sdist_names, version) == [], sdist_names
    assert not [n for n in wheel_names if n.startswith("tests/")]
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
    assert "License-File: LICENSE" in metadata.splitlines()
    assert "isales_async = isales_async.testing.pytest_plugin" in entry_points.splitlines()
