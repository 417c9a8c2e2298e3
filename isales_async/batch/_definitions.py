"""The tenant's business-result definitions, and a writeback checked against them; pure.

queryBusinessResults lists the level-1 codes a tenant defines, each with its sub-statuses
as ``children``. The server refuses a writeback whose ``busiResult`` is not one of those
codes (a parameter error) or whose ``subStatus`` is not one of that code's children
(``0200034``), one round trip per record. :meth:`Definitions.refusal` finds the same
before anything is sent, at the cost of a dict and a set lookup per record, and names
the closest defined codes (``difflib``) so a stale mapping or a typo is fixed at once.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence

from .._errors import UndefinedResultError
from .._models import BusinessResult, DefLevel

__all__ = [
    "NOT_ITS_SUB_STATUS",
    "NO_SUB_STATUSES",
    "UNDEFINED_RESULT",
    "Definitions",
]

#: The reasons of an :class:`~isales_async.UndefinedResultError` (its ``reason``).
UNDEFINED_RESULT = "busiResult not defined in the tenant"
NOT_ITS_SUB_STATUS = "subStatus not a sub-status of its busiResult"
NO_SUB_STATUSES = "subStatus given to a busiResult without sub-statuses"

_SUGGESTIONS = 3
_CUTOFF = 0.6  # difflib's default similarity: "B12x" finds "B12", "B1" finds "B01"
_MAX_REMEMBERED = 4096  # refusals kept per Definitions: a file repeating one stale code computes its suggestions once

# An explained refusal: field, message, value, reason, suggestions.
_Why = tuple[str, str, str, str, tuple[str, ...]]


class Definitions:
    """The business results a tenant defines: level-1 codes and each one's sub-statuses.

    Build it from the items of ``client.business_results.iter()`` (or get it from
    ``client.business_results.definitions()``). The items listed at the top level are
    the level-1 codes, except one marked ``defLevel`` 2 (the API reference: 1 a parent
    business result, 2 a sub-result; ``busiResult`` takes a parent); a code listed twice
    keeps the sub-statuses of both listings (nothing makes a code unique in the listing).
    The fake server reads them the same way.
    """

    def __init__(self, results: Iterable[BusinessResult]) -> None:
        self.results: tuple[BusinessResult, ...] = tuple(results)
        children: dict[str, dict[str, None]] = {}
        parents_of: dict[str, list[str]] = {}
        for result in self.results:
            if result.def_level is DefLevel.CHILD:
                continue
            own = children.setdefault(result.code, {})
            for child in result.children:
                own[child.code] = None
                parents_of.setdefault(child.code, []).append(result.code)
        self._children: Mapping[str, frozenset[str]] = {code: frozenset(subs) for code, subs in children.items()}
        self._ordered: Mapping[str, tuple[str, ...]] = {code: tuple(subs) for code, subs in children.items()}
        self._parents_of: Mapping[str, tuple[str, ...]] = {c: tuple(dict.fromkeys(p)) for c, p in parents_of.items()}
        self._remembered: dict[tuple[str, str | None], _Why] = {}

    def __repr__(self) -> str:
        subs = sum(len(s) for s in self._children.values())
        return f"Definitions({len(self._children)} business results, {subs} sub-statuses)"

    @property
    def codes(self) -> Sequence[str]:
        """The level-1 codes, in the order listed."""
        return tuple(self._children)

    def sub_statuses(self, code: str) -> Sequence[str]:
        """The sub-status codes of the level-1 ``code``, in the order listed (none if undefined)."""
        return self._ordered.get(code, ())

    def refusal(self, busi_result: str, sub_status: str | None) -> UndefinedResultError | None:
        """Why the server would refuse this pair, or ``None`` when the tenant defines it.

        ``sub_status`` ``None`` (or ``""``, which is not sent) passes with any defined code.
        """
        subs = self._children.get(busi_result)
        if subs is not None and (not sub_status or sub_status in subs):
            return None  # the hot path: one dict and one set lookup
        key = (busi_result, sub_status or None)
        why = self._remembered.get(key)
        if why is None:
            if len(self._remembered) >= _MAX_REMEMBERED:
                self._remembered.clear()
            why = self._remembered[key] = self._explain(busi_result, sub_status or None, subs)
        field, message, value, reason, suggestions = why
        # A fresh error per record: each record's outcome keeps (and may chain) its own.
        return UndefinedResultError(field, message, value=value, reason=reason, suggestions=suggestions)

    def check(self, busi_result: str, sub_status: str | None = None) -> None:
        """Raise the :class:`~isales_async.UndefinedResultError` of :meth:`refusal`, if any."""
        refused = self.refusal(busi_result, sub_status)
        if refused is not None:
            raise refused

    def _explain(self, busi_result: str, sub_status: str | None, subs: frozenset[str] | None) -> _Why:
        if subs is None:
            return self._undefined(busi_result)
        assert sub_status is not None
        elsewhere = [p for p in self._parents_of.get(sub_status, ()) if p != busi_result]
        where = f" (it is a sub-status of {_quoted(elsewhere)})" if elsewhere else ""
        if not subs:
            message = (
                f"{busi_result!r} has no sub-statuses in this tenant, so it takes no subStatus; "
                f"got {sub_status!r}{where or self._closest_elsewhere(sub_status)}"
            )
            return "sub_status", message, sub_status, NO_SUB_STATUSES, ()
        suggestions = _closest(sub_status, self._ordered[busi_result])
        message = f"{sub_status!r} is not a sub-status of {busi_result!r}{where}; {_offer(suggestions, busi_result)}"
        return "sub_status", message, sub_status, NOT_ITS_SUB_STATUS, suggestions

    def _closest_elsewhere(self, sub_status: str) -> str:
        """The sub-statuses of other codes closest to one no code has, each with its parent ("" if none is close)."""
        close = _closest(sub_status, tuple(self._parents_of))
        if not close:
            return ""
        return " (closest sub-statuses: " + ", ".join(f"{c!r} of {_quoted(self._parents_of[c])}" for c in close) + ")"

    def _undefined(self, busi_result: str) -> _Why:
        if self._children:
            suggestions = _closest(busi_result, tuple(self._children))
            offer = _offer(suggestions, None)
        else:
            suggestions, offer = (), "this tenant defines no business results at all"
        parents = self._parents_of.get(busi_result)
        where = f" (it is a sub-status of {_quoted(parents)})" if parents else ""
        message = f"{busi_result!r} is not a business result this tenant defines{where}; {offer}"
        return "busi_result", message, busi_result, UNDEFINED_RESULT, suggestions


def _closest(value: str, candidates: Sequence[str]) -> tuple[str, ...]:
    """The defined codes closest to ``value``: the same but for case or spaces first, then ``difflib``'s."""
    folded = value.strip().casefold()
    same = [c for c in candidates if c.strip().casefold() == folded]
    close = difflib.get_close_matches(value, candidates, n=_SUGGESTIONS, cutoff=_CUTOFF)
    return tuple(dict.fromkeys([*same, *close]))[:_SUGGESTIONS]


def _quoted(codes: Sequence[str]) -> str:
    return ", ".join(repr(code) for code in codes)


def _offer(suggestions: Sequence[str], parent: str | None) -> str:
    among = f" of the sub-statuses of {parent!r}" if parent is not None else ""
    if suggestions:
        return f"closest{among}: {_quoted(suggestions)}"
    return f"none{among} is close to it"
