"""isales-async: an asyncio client for the Huawei Cloud CC-iSales outbound-call open API."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version

from ._client import DEFAULT_ROUTE_LIMITS, ClientOptions, ISalesClient
from ._clock import Clock, SystemClock
from ._errors import (
    AuthenticationError,
    BusinessError,
    ClientClosedError,
    ConnectError,
    ConnectionLostError,
    DeadlineExceededError,
    DefinitionsUnavailableError,
    DuplicateRecordError,
    HTTPStatusError,
    InvalidParameterError,
    ISalesError,
    JournalError,
    JournalLockedError,
    NotFoundError,
    OutcomeUnknownError,
    PaginationError,
    PushFormatError,
    RateLimitedError,
    ReadTimeoutError,
    ResponseFormatError,
    ResponseTooLargeError,
    ServerError,
    TLSError,
    TransportError,
    UndefinedResultError,
    UnexpectedError,
    ValidationError,
    WrongEventLoopError,
)
from ._hooks import (
    CallFinished,
    CallStarted,
    CoolDownStarted,
    Event,
    GaveUp,
    Hook,
    RequestSent,
    ResponseReceived,
    RetryScheduled,
    log_event,
)
from ._limits import RouteLimit, SharedLimits
from ._models import BusinessResult, CallResult, CallStatus, DefLevel, ExternalResult, ObsResultCode, Page
from ._redis_limits import RedisLimits
from ._retry import RetryBudget, RetryPolicy
from ._secret import Secret
from ._signing import sign
from ._transport import Timeouts, Transport, TransportRequest, TransportResponse
from .batch._adaptive import ConcurrencyReport, LimitChange
from .batch._definitions import Definitions
from .batch._engine import DEFAULT_MAX_CONCURRENCY, BatchAbortedError, BatchControl
from .batch._journal import Journal, JournalEntry, Status
from .batch._report import BatchReport, Outcome, OutcomeKind, Progress, WritebackPlan
from .batch._writeback import Writeback
from .push._parsing import InvalidPushRecord, PushBatch, log_invalid_record, parse_push, parse_push_batch
from .push._receiver import PushReceiver, PushResponse
from .resources.call_results import CallResultQuery

try:
    __version__ = _distribution_version("isales-async")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_ROUTE_LIMITS",
    "AuthenticationError",
    "BatchAbortedError",
    "BatchControl",
    "BatchReport",
    "BusinessError",
    "BusinessResult",
    "CallFinished",
    "CallResult",
    "CallResultQuery",
    "CallStarted",
    "CallStatus",
    "ClientClosedError",
    "ClientOptions",
    "Clock",
    "ConcurrencyReport",
    "ConnectError",
    "ConnectionLostError",
    "CoolDownStarted",
    "DeadlineExceededError",
    "DefLevel",
    "Definitions",
    "DefinitionsUnavailableError",
    "DuplicateRecordError",
    "Event",
    "ExternalResult",
    "GaveUp",
    "HTTPStatusError",
    "Hook",
    "ISalesClient",
    "ISalesError",
    "InvalidParameterError",
    "InvalidPushRecord",
    "Journal",
    "JournalEntry",
    "JournalError",
    "JournalLockedError",
    "LimitChange",
    "NotFoundError",
    "ObsResultCode",
    "Outcome",
    "OutcomeKind",
    "OutcomeUnknownError",
    "Page",
    "PaginationError",
    "Progress",
    "PushBatch",
    "PushFormatError",
    "PushReceiver",
    "PushResponse",
    "RateLimitedError",
    "ReadTimeoutError",
    "RedisLimits",
    "RequestSent",
    "ResponseFormatError",
    "ResponseReceived",
    "ResponseTooLargeError",
    "RetryBudget",
    "RetryPolicy",
    "RetryScheduled",
    "RouteLimit",
    "Secret",
    "ServerError",
    "SharedLimits",
    "Status",
    "SystemClock",
    "TLSError",
    "Timeouts",
    "Transport",
    "TransportError",
    "TransportRequest",
    "TransportResponse",
    "UndefinedResultError",
    "UnexpectedError",
    "ValidationError",
    "Writeback",
    "WritebackPlan",
    "WrongEventLoopError",
    "log_event",
    "log_invalid_record",
    "parse_push",
    "parse_push_batch",
    "sign",
]
