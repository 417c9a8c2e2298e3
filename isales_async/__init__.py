"""isales-async: an asyncio client for the Huawei Cloud CC-iSales outbound-call open API."""

from __future__ import annotations

from ._batch import BatchControl, BatchReport, Outcome, OutcomeKind, Progress, Writeback
from ._client import DEFAULT_ROUTE_LIMITS, ISalesClient
from ._clock import Clock, SystemClock
from ._errors import (
    AuthenticationError,
    BatchAbortedError,
    BusinessError,
    ConnectError,
    ConnectionLostError,
    DuplicateRecordError,
    HTTPStatusError,
    InvalidParameterError,
    ISalesError,
    JournalError,
    JournalLockedError,
    NotFoundError,
    OutcomeUnknownError,
    PaginationError,
    RateLimitedError,
    ReadTimeoutError,
    ResponseFormatError,
    ResponseTooLargeError,
    ServerError,
    TLSError,
    TransportError,
    ValidationError,
)
from ._hooks import Event, GaveUp, Hook, RequestSent, ResponseReceived, RetryScheduled, log_event
from ._journal import Journal, JournalEntry, Status
from ._models import BusinessResult, CallResult, CallStatus, DefLevel, ExternalResult, ObsResultCode, Page
from ._push import PushFormatError, PushReceiver, PushResponse, parse_push
from ._retry import RetryBudget, RetryPolicy
from ._session import RouteLimit, Timeouts
from ._signing import sign
from .resources.call_results import CallResultQuery

__all__ = [
    "DEFAULT_ROUTE_LIMITS",
    "AuthenticationError",
    "BatchAbortedError",
    "BatchControl",
    "BatchReport",
    "BusinessError",
    "BusinessResult",
    "CallResult",
    "CallResultQuery",
    "CallStatus",
    "Clock",
    "ConnectError",
    "ConnectionLostError",
    "DefLevel",
    "DuplicateRecordError",
    "Event",
    "ExternalResult",
    "GaveUp",
    "HTTPStatusError",
    "Hook",
    "ISalesClient",
    "ISalesError",
    "InvalidParameterError",
    "Journal",
    "JournalEntry",
    "JournalError",
    "JournalLockedError",
    "NotFoundError",
    "ObsResultCode",
    "Outcome",
    "OutcomeKind",
    "OutcomeUnknownError",
    "Page",
    "PaginationError",
    "Progress",
    "PushFormatError",
    "PushReceiver",
    "PushResponse",
    "RateLimitedError",
    "ReadTimeoutError",
    "RequestSent",
    "ResponseFormatError",
    "ResponseReceived",
    "ResponseTooLargeError",
    "RetryBudget",
    "RetryPolicy",
    "RetryScheduled",
    "RouteLimit",
    "ServerError",
    "Status",
    "SystemClock",
    "TLSError",
    "Timeouts",
    "TransportError",
    "ValidationError",
    "Writeback",
    "log_event",
    "parse_push",
    "sign",
]
