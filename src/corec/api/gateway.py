"""How routes reach the plugins: a bus request, its refusals and failures as HTTP errors.

- A :class:`~corec.core.queries.Refused` reply becomes 404 (``not_found``), 422
  (``invalid``), 409 (``conflict``), 403 (``forbidden``) or 503 (``unavailable``,
  with ``Retry-After``), body ``{"detail": message, "code": code, "field": field}``.
- No plugin serving the endpoint (not enabled on this node) → 503; no reply in time →
  504. A responder that raised is the node's fault: 500 (and logged by the bus).
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException

from corec.core.bus import Bus
from corec.core.errors import NoResponder, RequestTimeout
from corec.core.events import Payload
from corec.core.queries import Refused

STATUS_OF_REFUSAL = {
    "not_found": 404,
    "invalid": 422,
    "conflict": 409,
    "forbidden": 403,
    "unavailable": 503,
}


class RefusedError(HTTPException):
    """An HTTP error carrying a plugin's :class:`Refused` (see the module docstring)."""

    def __init__(self, refused: Refused) -> None:
        headers = (
            {"Retry-After": str(refused.retry_after_s)}
            if refused.retry_after_s is not None
            else None
        )
        super().__init__(STATUS_OF_REFUSAL[refused.code], refused.message, headers=headers)
        self.refused = refused


class Gateway:
    """Bus requests on behalf of the API's routes.

    Args:
        bus: the node's bus.
        timeout_s: how long to wait for a reply.
    """

    def __init__(self, bus: Bus, timeout_s: int) -> None:
        self.bus = bus
        self.timeout_s = timeout_s

    async def ask(self, endpoint: str, request: Payload, expect: type | tuple[type, ...]) -> Any:
        """The reply of ``endpoint`` to ``request``, which must be an ``expect`` instance.

        Raises:
            RefusedError: the plugin refused (404/409/422/403/503).
            HTTPException: 503 nobody serves ``endpoint``; 504 no reply in time.
            TypeError: the reply is of an unexpected type (a contract bug: 500).
        """
        try:
            reply = await self.bus.request(endpoint, request, timeout_s=self.timeout_s)
        except NoResponder as exc:
            raise HTTPException(
                503, f"{endpoint} is not served on this node (its plugin is not enabled)"
            ) from exc
        except RequestTimeout as exc:
            raise HTTPException(
                504, f"{endpoint} did not answer within {self.timeout_s} s"
            ) from exc
        if isinstance(reply, Refused):
            raise RefusedError(reply)
        if not isinstance(reply, expect):
            raise TypeError(f"{endpoint} replied {type(reply).__name__}, expected {expect}")
        return reply
