"""Developer sessions: ``nox -s tests lint mypy``; ``nox -s bench`` runs the benchmarks."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "mypy"]


@nox.session
def tests(session: nox.Session) -> None:
    session.install(".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "isales_async", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "isales_async", "tests", "benchmarks", "noxfile.py")


@nox.session
def mypy(session: nox.Session) -> None:
    session.install(".[test]", "mypy")
    session.run("mypy")
    session.run("mypy", "--strict", "tests/typecheck/api.py")


@nox.session
def bench(session: nox.Session) -> None:
    session.install(".[cli,bench]")
    session.run("python", "-m", "benchmarks", *session.posargs)
