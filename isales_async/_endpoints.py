"""The API's endpoints as data: method, path template, write-ness and error codes.

Error codes mean different things per endpoint (``0200007`` is a parameter error in
queryBusinessResults, "the call record ID does not exist" in callresultdetail), so each
endpoint carries its own table. Pure: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs

__all__ = ["ENDPOINTS", "Endpoint", "ErrorKind"]


class ErrorKind(enum.Enum):
    """What an error code means, which decides the exception class raised."""

    PARAMETER = "parameter"
    NOT_FOUND = "not_found"
    OTHER = "other"


_P = ErrorKind.PARAMETER
_COMMON: Mapping[str, tuple[ErrorKind, str]] = {
    "0200001": (_P, "Parameter error"),
    "02000001": (_P, "Empty parameter"),
    "02000002": (_P, "The parameter contains invalid characters"),
    "02000003": (_P, "The parameter length cannot exceed the maximum length"),
    "02000004": (_P, "The parameter length cannot be less than the minimum length"),
    "02000005": (_P, "The parameter length must be within the specified range"),
    "02000006": (_P, "Incorrect parameter type"),
    "02000007": (_P, "Incorrect parameter value"),
    "02000008": (_P, "Parameter conversion error"),
    "02000009": (_P, "Incorrect parameter combination"),
    "02000010": (_P, "The hour and minute parameters must be set at the same time"),
    "02000011": (_P, "The number of parameters cannot exceed the specified number"),
}


@attrs.frozen
class Endpoint:
    """One operation of the API.

    ``path`` is relative to ``/rest/isales/v1/openapi/campaigns/{vdnId}/`` and may hold
    ``{name}`` placeholders; ``write`` marks operations that change server state and so
    must never be resent when their fate is unknown.
    """

    name: str
    method: str
    path: str
    write: bool = False
    errors: Mapping[str, tuple[ErrorKind, str]] = attrs.field(factory=dict)

    def meaning(self, code: str) -> tuple[ErrorKind, str]:
        """What ``code`` means for this endpoint; unknown codes are ``OTHER``."""
        found = self.errors.get(code) or _COMMON.get(code)
        return found if found is not None else (ErrorKind.OTHER, "Unknown error code")


_NF = ErrorKind.NOT_FOUND
ENDPOINTS: Mapping[str, Endpoint] = {
    e.name: e
    for e in [
        Endpoint("queryOBSResultCode", "GET", "queryOBSResultCode"),
        Endpoint(
            "queryBusinessResults",
            "GET",
            "queryBusinessResults",
            errors={"0200005": (_P, "Parameter error"), "0200007": (_P, "Parameter error")},
        ),
        Endpoint(
            "callBusiResult",
            "POST",
            "callBusiResult/{dataId}",
            write=True,
            errors={
                "0200033": (_NF, "The outbound call data does not exist"),
                "0200034": (_P, "The substatus does not match the business result"),
                "0200999": (ErrorKind.OTHER, "Failed to write back the business result"),
            },
        ),
        Endpoint(
            "callresultdetail",
            "GET",
            "callresultdetail/{callId}",
            errors={"0200007": (_NF, "The call record ID does not exist")},
        ),
        Endpoint(
            "callresult",
            "POST",
            "callresult/{campaignId}",
            errors={
                "0200007": (_NF, "The campaign does not exist"),
                "0200008": (_P, "beginTime and endTime must be given together"),
                "0200009": (_P, "Bad time format"),
                "0200010": (_P, "The start time must be before the end time"),
                "0200011": (_P, "The time span must be at most 30 days"),
            },
        ),
        Endpoint("createObResult", "POST", "createObResult", write=True),
        Endpoint("queryOBSResults", "GET", "queryOBSResults"),
        Endpoint("queryObsResultDetail", "GET", "{defId}/queryObsResultDetail"),
        Endpoint("updateObResult", "POST", "updateObResult", write=True),
    ]
}
