"""queryOBSResultCode: the OBS outbound-call result codes of the VDN."""

from __future__ import annotations

from .._models import ObsResultCode
from ._base import PagedResource

__all__ = ["ObsResultCodes"]


class ObsResultCodes(PagedResource[ObsResultCode]):
    """``client.obs_result_codes``: ``page()``, ``pages()`` and ``iter()`` over result codes."""

    _endpoint = "queryOBSResultCode"
    _list_field = "obsCodes"
    _model = ObsResultCode
    _key = "obs_code"
