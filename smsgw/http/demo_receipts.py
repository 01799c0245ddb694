"""`smsgw demo`'s own receipt sink, `/demo/receipts`: the `dlr_url` of the curl line the demo prints, so a new
user sees a signed JSON delivery report arrive with nothing else running. A POST is kept in memory (its body,
its `X-Smsgw-Signature`, and whether that is the HMAC of the body with the demo account's `callback_secret`, as a
receiver should check it); GET lists what arrived, oldest first.

Only `run_demo` mounts it: in a real gateway anyone who can reach the HTTP port could post there.
"""

from __future__ import annotations

import hmac
import json
from collections import deque
from datetime import UTC, datetime
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from smsgw.config import DEMO_SYSTEM_ID
from smsgw.http.deps import HttpDeps
from smsgw.scheduler.callback import SIGNATURE_HEADER, sign

PATH: Final = "/demo/receipts"
# The newest this many are kept: a demo left running for days must not grow without bound.
KEPT: Final = 100


def routes(deps: HttpDeps) -> list[BaseRoute]:
    received: deque[dict[str, Any]] = deque(maxlen=KEPT)

    async def keep(request: Request) -> Response:
        raw = await request.body()
        signature = request.headers.get(SIGNATURE_HEADER, "")
        secret = next((a.callback_secret for a in deps.config.current.accounts if a.system_id == DEMO_SYSTEM_ID), "")
        try:
            body: Any = json.loads(raw)
        except ValueError:  # not a JSON report (a Jasmin form, say): shown as it came
            body = raw.decode("utf-8", "replace")
        received.append({
            "received_at": datetime.now(UTC).isoformat(),
            "signature": signature,
            "signature_valid": bool(secret) and hmac.compare_digest(signature, sign(raw, secret)),
            "body": body,
        })
        return Response(status_code=204)

    async def listing(request: Request) -> Response:
        return JSONResponse({"receipts": list(received)})

    return [Route(PATH, keep, methods=["POST"]), Route(PATH, listing, methods=["GET"])]
