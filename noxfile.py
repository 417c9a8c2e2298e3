"""Developer sessions.

``nox`` runs the suite on every supported Python (``tests-3.10`` ... ``tests-3.13``), ruff
and strict mypy; ``nox -s lowest`` runs the suite on the lowest version of every direct
dependency; ``nox -s build`` builds the sdist and wheel and checks what they hold;
``nox -s verifytypes`` checks with pyright that the public API is completely typed;
``nox -s docs`` builds the documentation site with ``mkdocs build --strict``; ``nox -s bench``
runs the benchmarks; ``nox -s mutate`` runs mutation testing (slow, not in CI).
"""

from __future__ import annotations

import glob
import shutil

import nox

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
LOWEST_PYTHON = PYTHONS[0]

nox.options.sessions = ["tests", "lint", "mypy", "verifytypes"]

# Run inside the lowest environment: every direct requirement with a ">=" floor (the extras
# installed there included) must be installed at exactly that floor, or the floor is not
# what the suite proved.
CHECK_FLOORS = """
import sys
from importlib.metadata import requires, version
from packaging.requirements import Requirement
from packaging.version import Version

extras = set(sys.argv[1:])
floors = {}
for text in requires("isales-async"):
    req = Requirement(text)
    if req.name != "isales-async" and (not req.marker or any(req.marker.evaluate({"extra": e}) for e in extras)):
        (floors[req.name],) = [s.version for s in req.specifier if s.operator == ">="]
wrong = []
for name, floor in sorted(floors.items()):
    installed = version(name)
    print(f"{name:16} floor {floor:8} installed {installed}")
    if Version(installed) != Version(floor):
        wrong.append(f"{name}: the floor is {floor} but {installed} was installed")
sys.exit("\\n".join(wrong) or None)
"""


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    session.install(".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python=LOWEST_PYTHON)
def lowest(session: nox.Session) -> None:
    """The suite on the lowest direct versions of every dependency, on the lowest Python."""
    session.install("uv")
    python = f"{session.bin}/python"
    session.run("uv", "pip", "install", "--python", python, "--resolution", "lowest-direct", ".[test]")
    session.run("python", "-c", CHECK_FLOORS, "cli", "test")
    session.run("pytest", *session.posargs)


@nox.session
def build(session: nox.Session) -> None:
    """Build the sdist and wheel, list what they hold, and run the test that checks it."""
    session.install(".[test]")
    outdir = f"{session.create_tmp()}/dist"
    shutil.rmtree(outdir, ignore_errors=True)
    session.run("python", "-m", "build", "--outdir", outdir)
    for wheel in glob.glob(f"{outdir}/*.whl"):
        session.run("python", "-m", "zipfile", "-l", wheel)
    for sdist in glob.glob(f"{outdir}/*.tar.gz"):
        session.run("python", "-m", "tarfile", "-l", sdist)
    session.run("pytest", "-m", "build", "tests/test_packaging.py")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site into ``site/``; any warning (a broken link, a page not
    in the nav, a docstring griffe cannot read) fails the build."""
    session.install(".[docs]")
    session.env["NO_MKDOCS_2_WARNING"] = "1"  # mkdocs-material's banner about its successor
    session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "isales_async", "tests", "benchmarks", "docs", "noxfile.py")
    session.run("ruff", "format", "--check", "isales_async", "tests", "benchmarks", "docs", "noxfile.py")


@nox.session
def mypy(session: nox.Session) -> None:
    session.install(".[test]", "mypy")
    session.run("mypy")
    session.run("mypy", "--strict", "tests/typecheck/api.py")


@nox.session
def verifytypes(session: nox.Session) -> None:
    """Every public name of the installed package fully typed, as pyright sees it (it fails below 100%)."""
    session.install(".[cli]", "pyright")
    session.run("pyright", "--verifytypes", "isales_async", "--ignoreexternal")


@nox.session
def bench(session: nox.Session) -> None:
    session.install(".[cli,bench]")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def mutate(session: nox.Session) -> None:
    """Mutation testing with mutmut of the pure core and the batch engine (``[tool.mutmut]``).

    Slow, so not part of the default sessions or CI. Arguments select mutants by name, e.g.
    one module at a time: ``nox -s mutate -- "isales_async._retry*"``. mutmut keeps its
    state in ``mutants/`` (ignored by git), so a second run re-tests only what changed;
    the session ends with the score per module (``killed / tested``).
    """
    session.install("-e", ".[test]", "mutmut>=3.8")
    session.run("mutmut", "run", *session.posargs)
    session.run("python", "-c", MUTATION_SCORES)


# Reads ``mutmut results --all true`` and prints, per module, how many mutants each status has
# and the score: killed (a timeout counts as killed) over the mutants that were tested.
MUTATION_SCORES = """
import collections, subprocess
lines = subprocess.run(["mutmut", "results", "--all", "true"], capture_output=True, text=True, check=True).stdout
by_module = collections.defaultdict(collections.Counter)
for line in lines.splitlines():
    name, _, status = line.strip().rpartition(": ")
    if name:
        by_module[name.split(".x_")[0].split(".x\u01c1")[0]][status] += 1
for module, counts in sorted(by_module.items()):
    tested = sum(counts.values()) - counts["not checked"]
    killed = counts["killed"] + counts["timeout"]
    score = f"{100 * killed / tested:5.1f}%" if tested else "  n/a"
    print(f"{module:28} {score}  {killed}/{tested} killed  {dict(counts)}")
"""
