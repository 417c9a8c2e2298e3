"""Deterministic seed data for the fake server: the same every run, derived from counts."""

from __future__ import annotations

import datetime as _dt
from typing import Any

__all__ = ["business_results", "call_results", "obs_codes"]

_OBS_DESCRIPTIONS = (
    "The switch is busy.",
    "The call is rejected.",
    "The called party does not answer the call.",
    "No resource available on the ACD.",
    "The ACD times out.",
)


def obs_codes(count: int) -> list[dict[str, Any]]:
    """``count`` OBS result codes ``00600``, ``00601``, ... with rotating descriptions."""
    return [
        {"obsCode": f"{600 + i:05d}", "obsCodeDesc": _OBS_DESCRIPTIONS[i % len(_OBS_DESCRIPTIONS)]}
        for i in range(count)
    ]


def business_results(parents: int, children_per_parent: int) -> list[dict[str, Any]]:
    """Parents ``B01``... each with sub-results ``B01-1``...; ``defLevel`` as strings, as the example sends."""
    return [
        {
            "code": f"B{p:02d}",
            "name": f"Business result {p}",
            "defLevel": "1",
            "children": [
                {"code": f"B{p:02d}-{c}", "name": f"Sub-result {p}.{c}", "defLevel": "2"}
                for c in range(1, children_per_parent + 1)
            ],
        }
        for p in range(1, parents + 1)
    ]


def call_results(vdn_id: int, campaign_id: str, count: int, start: _dt.datetime) -> list[dict[str, Any]]:
    """``count`` calls of one campaign, a minute apart; every fourth one failed."""
    calls = []
    for i in range(count):
        begin = start + _dt.timedelta(minutes=i)
        failed = i % 4 == 3
        calls.append(
            {
                "campaignId": campaign_id,
                "sessionId": f"s-{campaign_id}-{i}",
                "callId": f"{int(begin.timestamp())}-{i}",
                "called": f"8888{i:06d}",
                "callTimeStr": begin.strftime("%Y-%m-%d %H:%M:%S"),
                "ackBeginTime": begin.strftime("%Y-%m-%d %H:%M:%S"),
                "callBeginTime": "" if failed else (begin + _dt.timedelta(seconds=4)).strftime("%Y-%m-%d %H:%M:%S"),
                "callEndTime": (begin + _dt.timedelta(seconds=30)).strftime("%Y-%m-%d %H:%M:%S"),
                "callStatus": 5 if failed else "6",
                "failCode": "00603" if failed else "00000",
                "resultCode": "OB00603" if failed else "OB99999",
                "vdnId": vdn_id,
                "customField": f"order-{i}",
                "recordPath": "",
            }
        )
    return calls
