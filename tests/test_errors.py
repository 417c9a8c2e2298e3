"""Every public error survives pickle (Celery, multiprocessing), subclasses added later included."""

from __future__ import annotations

import copy
import inspect
import pickle
from typing import Any

import pytest

import isales_async
from isales_async import BatchReport, ISalesError

# A representative value for each constructor parameter of the public errors. A new error
# with a parameter not named here fails the test below, asking for one.
SAMPLES: dict[str, Any] = {
    "message": "something went wrong",
    "field": "vdn_id",
    "status": 429,
    "endpoint": "callBusiResult",
    "retry_after": 1.5,
    "code": "0200033",
    "description": "The outbound call data 42 does not exist.",
    "meaning": "The outbound call data does not exist",
    "snippet": "<html>login</html>",
    "wait": 30.0,
    "value": {"callStatus": "x"},
    "reason": "the server refused the signature",
    "key": "42",
    "path": "/tmp/results.csv.journal.sqlite",
    "holder": "pid 4242 on host-1 since 2026-12-01T20:00:00Z",
    "report": BatchReport(succeeded=[], failed=[], unknown=[], skipped={"succeeded in an earlier run": 3}, elapsed=1.5),
    "cause": None,
    "suggestions": ("B12", "B02"),
}
PUBLIC_ERRORS = sorted(
    (
        value
        for value in (getattr(isales_async, name) for name in isales_async.__all__)
        if isinstance(value, type) and issubclass(value, BaseException)
    ),
    key=lambda cls: cls.__name__,
)


def build(cls: type[BaseException]) -> BaseException:
    """An instance of ``cls`` made with a representative value for every parameter."""
    try:
        parameters = [
            p for p in inspect.signature(cls).parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
    except ValueError:  # no constructor written in Python (on some versions)
        parameters = []
    if not parameters:  # the builtin constructor: a message
        return cls(SAMPLES["message"])
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for parameter in parameters:
        assert parameter.name in SAMPLES, f"add a sample value for {cls.__name__}({parameter.name}=...) to SAMPLES"
        if parameter.kind is parameter.POSITIONAL_ONLY:
            args.append(SAMPLES[parameter.name])
        else:
            kwargs[parameter.name] = SAMPLES[parameter.name]
    return cls(*args, **kwargs)


class JournalBusyError(ISalesError):
    """A subclass as another module would add it: keyword-only arguments, its own attributes."""

    def __init__(self, path: str, *, holder: dict[str, Any], since: float | None = None) -> None:
        super().__init__(f"{path} is held by {holder['pid']}")
        self.path = path
        self.holder = holder
        self.since = since


def assert_survives(error: BaseException) -> None:
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        clone = pickle.loads(pickle.dumps(error, protocol=protocol))
        assert type(clone) is type(error)
        assert clone.args == error.args
        assert str(clone) == str(error)
        assert clone.__dict__ == error.__dict__
    assert copy.copy(error).__dict__ == error.__dict__


def test_every_public_exception_class_is_covered() -> None:
    names = {cls.__name__ for cls in PUBLIC_ERRORS}
    assert {"ISalesError", "ValidationError", "BusinessError", "ClientClosedError", "DeadlineExceededError"} <= names
    assert len(PUBLIC_ERRORS) >= 20


@pytest.mark.parametrize("cls", PUBLIC_ERRORS, ids=lambda cls: cls.__name__)
def test_every_public_error_survives_pickle(cls: type[BaseException]) -> None:
    error = build(cls)
    assert isinstance(error, ISalesError)
    assert_survives(error)


def test_a_subclass_defined_elsewhere_survives_pickle_for_free() -> None:
    error = JournalBusyError("run.journal", holder={"pid": 4242, "host": "batch-1"}, since=12.5)
    if hasattr(error, "add_note"):  # Python 3.11+
        error.add_note("resume with --journal run.journal")
    assert_survives(error)
    clone = pickle.loads(pickle.dumps(error))
    assert (clone.path, clone.holder, clone.since) == ("run.journal", {"pid": 4242, "host": "batch-1"}, 12.5)


def test_a_pickled_error_is_still_caught_by_its_bases() -> None:
    clone = pickle.loads(pickle.dumps(isales_async.ClientClosedError("closed")))
    assert isinstance(clone, RuntimeError)
    with pytest.raises(isales_async.ValidationError) as info:
        raise pickle.loads(pickle.dumps(isales_async.ValidationError("vdn_id", "must be 1-9999")))
    assert (info.value.field, str(info.value)) == ("vdn_id", "vdn_id: must be 1-9999")
    assert isinstance(info.value, ValueError)
