"""The HTTP face: one ASGI app (Starlette) served by hypercorn's Trio worker inside the gateway's own nursery.

`server.serve_http` runs it; `app.build_app` assembles it from route modules (`ops`: /metrics, /healthz, /readyz;
later the REST API, the Kannel/Jasmin endpoints and the portal), each a module with `routes(deps)`, so a new one
is a new file and one line in `app.ROUTE_MODULES`. What the routes may use of the gateway is `deps.HttpDeps`;
errors are `problems` (RFC 9457), credentials `auth` (the SMPP bind guard's rules, shared), body size and request
time `limits`.
"""
