"""What a batch does with a record its journal already knows; pure, tested as a table.

The journal keeps, per canonical dataId, the state of its last attempt and the
fingerprint of the payload it sent (see :func:`isales_async._writeback.fingerprint`).
A re-run compares that with the record in hand:

==========================  ===================  ==========================================
previous state              payload unchanged    payload changed
==========================  ===================  ==========================================
none, queued, not_sent      send                 send
succeeded                   skip                 send
failed (definite)           skip; send with      send
                            ``retry_failed``
failed for the tenant's     skip; send when the  send
definitions                 definitions now
(:data:`REFUSED_FOR_        define it, or with
DEFINITIONS`)               ``retry_failed``
sending, unknown (doubt)    skip; send with      skip; send with ``resend_unknown``
                            ``resend_unknown``
==========================  ===================  ==========================================

A record in doubt may already be applied, so even a changed payload is not sent
unless asked: a second writeback can trigger the campaign's retry policy. A previous
fingerprint of ``None`` (a migrated row whose record could not be read) counts as
unchanged, so nothing is sent twice on a guess.

A refusal for the tenant's definitions says nothing about the payload alone: the same
record is applied once the tenant defines its codes. Such a record stays a definite
failure (so an unchecked re-run, which cannot tell whether the tenant changed, skips it
as before), but a re-run that checks the definitions and finds the record defined now
sends it again: the tenant changed since the server refused it. A refused write was not
applied, so sending it again is safe.
"""

from __future__ import annotations

import enum

__all__ = ["IN_DOUBT", "REFUSED_FOR_DEFINITIONS", "SKIP_FAILED", "SKIP_SUCCEEDED", "SKIP_UNKNOWN", "Status", "decide"]


class Status(enum.Enum):
    """A record's state in the journal."""

    QUEUED = "queued"  # taken by a worker, not yet sent (also: taken, then the batch stopped)
    SENDING = "sending"  # may have reached the server
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # definitely: validation or a business error
    NOT_SENT = "not_sent"  # failed without being applied (connect, 429, 503, 401): safe to resend
    UNKNOWN = "unknown"


#: States whose record may or may not have been applied.
IN_DOUBT = frozenset({Status.SENDING, Status.UNKNOWN})

#: The callBusiResult codes of a refusal for the tenant's definitions: ``0200034`` (the
#: subStatus is not one of the busiResult's), and ``0200001``, the parameter error the
#: server answers for a busiResult it does not define (every other parameter this client
#: checks before sending; at worst an unchecked parameter error costs one more refusal).
REFUSED_FOR_DEFINITIONS = frozenset({"0200001", "0200034"})

SKIP_SUCCEEDED = "succeeded in an earlier run"
SKIP_FAILED = "failed in an earlier run, unchanged since (not resent without retry_failed)"
SKIP_UNKNOWN = "outcome unknown from an earlier run (not resent)"


def decide(
    previous: Status | None,
    previous_fingerprint: str | None,
    current_fingerprint: str,
    *,
    retry_failed: bool = False,
    resend_unknown: bool = False,
    previous_code: str | None = None,
    defined_now: bool = False,
) -> str | None:
    """``None`` to send the record, or the reason it is skipped (a key of ``BatchReport.skipped``).

    ``previous_code`` is the server's code of the previous failure, if any;
    ``defined_now`` says this run checked the tenant's definitions and they define the record.
    """
    unchanged = previous_fingerprint is None or previous_fingerprint == current_fingerprint
    if previous in IN_DOUBT:
        return None if resend_unknown else SKIP_UNKNOWN
    if previous is Status.SUCCEEDED and unchanged:
        return SKIP_SUCCEEDED
    if previous is Status.FAILED and unchanged and not retry_failed:
        tenant_changed = defined_now and previous_code in REFUSED_FOR_DEFINITIONS
        return None if tenant_changed else SKIP_FAILED
    return None
