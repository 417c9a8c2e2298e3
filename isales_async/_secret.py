"""The secret key, in a wrapper that never shows it.

The client wraps the SK the moment it is accepted, so a ``repr``, a log line, an
exception or a traceback's frame locals (which error trackers record) show only
``Secret('***')``. The signer alone calls :meth:`Secret.reveal`, to compute the HMAC.
"""

from __future__ import annotations

from typing import cast, final

from ._errors import ValidationError
from ._validation import has_lone_surrogate

__all__ = ["Secret"]


def _problem(value: object) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not value.strip():
        return "must not be empty"
    if has_lone_surrogate(value):
        return "must be encodable as UTF-8 (it holds a lone surrogate)"
    return None


@final
class Secret:
    """A secret string (the SK) whose ``repr`` and ``str`` hide it.

    ``Secret(value)`` never raises, whatever ``value`` is, so that wrapping can be the
    very first thing done with it; what makes the value unusable is kept in ``problem``
    (in words that never quote the value) and raised, as a :class:`ValidationError`
    naming ``sk``, by whoever checks it or by :meth:`reveal`. Wrapping a ``Secret`` again
    gives a wrapper of the same value.
    """

    __slots__ = ("_value", "problem")

    def __init__(self, value: str | Secret) -> None:
        if isinstance(value, Secret):
            self._value: object = value._value
            self.problem: str | None = value.problem
        else:
            self._value = value
            self.problem = _problem(value)

    def reveal(self) -> str:
        """The secret itself, for the signer only; a :class:`ValidationError` if it is unusable."""
        if self.problem is not None:
            raise ValidationError("sk", self.problem)
        return cast(str, self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__
