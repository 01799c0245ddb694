"""The faces share one URL space: the REST API, Kannel's and Jasmin's paths and the portal's pages must never
claim the same path and method (Jasmin's `/send` once shadowed the portal's send page)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import SimpleNamespace

from starlette.routing import Mount, Route

from smsgw.config import Config, ConfigHolder, HttpConfig, StoreConfig
from smsgw.http import app as http_app
from smsgw.http import demo_receipts


def test_no_two_route_modules_claim_the_same_path_and_method(tmp_path: Path) -> None:
    # Route tables need only the config (the portal's session key); nothing is served.
    config = Config(http=HttpConfig(session_secret="x"), store=StoreConfig(path=str(tmp_path / "gw.db")))
    deps = SimpleNamespace(config=ConfigHolder(config))
    claims: Counter[tuple[str, str]] = Counter()
    for module in (*http_app.ROUTE_MODULES, demo_receipts):
        for route in module.routes(deps):
            if isinstance(route, Route):
                for method in route.methods or {"*"}:
                    claims[route.path, method] += 1
            elif isinstance(route, Mount):
                claims[route.path, "*"] += 1
    assert [claim for claim, n in claims.items() if n > 1] == []
