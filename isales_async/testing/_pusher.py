"""The push client: how CC-iSales posts call results to a callback URL, and re-posts them.

CC-iSales pushes call results to the tenant's callback URL as a JSON list of records in
the pushed format (:data:`PUSH_FIELDS`), pushes again at once after a failure, then every
:data:`REPUSH_INTERVAL` seconds, at most :data:`MAX_PUSHES` times, until it is answered
200. A test plays that part against a receiver with
:meth:`FakeISales.push_results <isales_async.testing.FakeISales.push_results>`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp

from .._clock import Clock

__all__ = ["MAX_PUSHES", "PUSH_FIELDS", "REPUSH_INTERVAL", "malformed", "push", "pushed_format"]

#: The fields of a pushed call result, and the documented re-push behaviour.
PUSH_FIELDS = (
    "campaignId",
    "sessionId",
    "called",
    "callTimeStr",
    "callStatus",
    "failCode",
    "vdnId",
    "callId",
    "customField",
    "recordPath",
)
REPUSH_INTERVAL = 600.0
MAX_PUSHES = 6


def pushed_format(calls: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The calls as CC-iSales pushes them: only the pushed fields."""
    return [{key: call[key] for key in PUSH_FIELDS} for call in calls]


def malformed(records: Iterable[dict[str, Any]]) -> list[Any]:
    """Seven records no receiver can read, four of them built on the four pushed ``records``."""
    wrong_status, wrong_vdn, no_call_id, numeric_call_id = (dict(record) for record in records)
    del no_call_id["callId"]
    return [
        {**wrong_status, "callStatus": "succeeded"},
        {**wrong_vdn, "vdnId": "eight"},
        no_call_id,
        {**numeric_call_id, "callId": 1644464743},
        "not a call result",
        1388,
        None,
    ]


async def push(url: str, body: bytes, clock: Clock) -> list[int]:
    """POST ``body`` to ``url`` until it is answered 200, at most :data:`MAX_PUSHES` times.

    The second push follows the first at once; each later one waits
    :data:`REPUSH_INTERVAL` on ``clock``. Returns the status of each push (0 when the
    connection failed).
    """
    statuses: list[int] = []
    async with aiohttp.ClientSession() as session:
        for attempt in range(MAX_PUSHES):
            if attempt >= 2:
                await clock.sleep(REPUSH_INTERVAL)
            try:
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                    statuses.append(response.status)
            except aiohttp.ClientError:
                statuses.append(0)
            if statuses[-1] == 200:
                break
    return statuses
