"""The REST API's OpenAPI 3.1 document, written by hand next to the routes it describes (`api.py`), and the same
document rendered as one self-contained HTML page for /api/docs (no scripts, no CDN: gateways run offline).

tests/http/test_api.py validates the document and checks that it names every route `api.routes` serves.
"""

from __future__ import annotations

import functools
from typing import Any, Final

import jinja2

import smsgw

_PROBLEM: Final = {"$ref": "#/components/schemas/Problem"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": _PROBLEM}}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_AUTH_ERRORS: Final = {
    "401": _error("No credentials, wrong ones, or an unknown or revoked API key (with `WWW-Authenticate: Basic`)"),
    "429": _error("Too many failed logins from this address: locked out for `Retry-After` seconds"),
    "503": _error("Every password check slot is busy, or the request took longer than `[http] request_timeout_s`"),
}
_BAD_REQUEST: Final = {"400": _error("A parameter or a field of the body is missing or invalid (`detail` says which)")}
_LIMIT: Final = {
    "name": "limit", "in": "query", "required": False,
    "description": "Rows in the page: 1 to `[http] max_page_size` (default 1000), 100 when not given.",
    "schema": {"type": "integer", "minimum": 1, "default": 100},
}
_TIME: Final = {"type": "string", "format": "date-time"}
_MONEY: Final = {"type": "string", "description": "Decimal amount in the billing currency, e.g. \"0.05\"",
                 "examples": ["0.05"]}
_STATES: Final = ["ACCEPTED", "SCHEDULED", "PROCESSING", "RETRY", "EXPIRED", "UNDELIVERABLE", "DELIVERED", "CANCELLED",
                  "REJECTED"]
_MESSAGE_ID: Final = {"name": "message_id", "in": "path", "required": True, "schema": {"type": "string"}}

_SCHEMAS: Final[dict[str, Any]] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details.",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string", "examples": ["about:blank"]},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "rejected": {"type": "array", "items": _ref("Rejected"),
                         "description": "On a send that accepted nothing: why each number was refused."},
        },
    },
    "SendRequest": {
        "type": "object",
        "required": ["to", "text"],
        "additionalProperties": False,
        "properties": {
            "to": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {"type": "string"},
                   "description": "Numbers, international (447700900123, +44 7700 900123) or national in the "
                                  "account's default_country_code. Each is validated alone."},
            "text": {"type": "string", "minLength": 1,
                     "description": "GSM 7-bit when every character fits it, else UCS-2; split as the route allows."},
            "from": {"type": "string", "description": "Sender ID or number; the account's default when absent."},
            "schedule_at": {**_TIME, "description": "Send at this time (with its UTC offset); past means now."},
            "validity_minutes": {"type": "integer", "minimum": 1,
                                 "description": "From the send time; default and range from `[messages]`."},
            "flash": {"type": "boolean", "default": False},
            "dlr_url": {"type": "string", "format": "uri",
                        "description": "Where the delivery report of each message is POSTed."},
            "client_ref": {"type": "string", "maxLength": 64,
                           "description": "Your reference, stored and returned with each message."},
        },
    },
    "SentMessage": {
        "type": "object",
        "required": ["to", "message_id", "segments", "charge", "state"],
        "properties": {
            "to": {"type": "string", "description": "As given in the request"},
            "message_id": {"type": "string"},
            "segments": {"type": "integer"},
            "charge": _MONEY,
            "state": {"type": "string", "enum": ["ACCEPTED", "SCHEDULED"]},
        },
    },
    "Rejected": {
        "type": "object",
        "required": ["to", "code", "reason"],
        "properties": {
            "to": {"type": "string"},
            "code": {"type": "string", "description": "The SMPP command_status name the same submission gets over "
                     "SMPP, e.g. ESME_RINVDSTADR, VENDOR_INSUFFICIENT_BALANCE (README lists them)",
                     "examples": ["ESME_RINVDSTADR"]},
            "reason": {"type": "string"},
        },
    },
    "SendResult": {
        "type": "object",
        "required": ["messages", "rejected"],
        "properties": {"messages": {"type": "array", "items": _ref("SentMessage")},
                       "rejected": {"type": "array", "items": _ref("Rejected")}},
    },
    "Message": {
        "type": "object",
        "required": ["message_id", "to", "from", "state", "state_code", "smpp_state", "error_code", "segments",
                     "charge", "submitted_at", "scheduled_at", "done_at", "client_ref"],
        "properties": {
            "message_id": {"type": "string"},
            "to": {"type": "string", "description": "Normalised international digits"},
            "from": {"type": "string"},
            "state": {"type": "string", "enum": _STATES},
            "state_code": {"type": "integer", "description": "2 ACCEPTED, 3 SCHEDULED, 4 PROCESSING, 19 RETRY, "
                           "20 EXPIRED, 21 UNDELIVERABLE, 22 DELIVERED, 30 CANCELLED, 31 REJECTED"},
            "smpp_state": {"type": "string", "enum": ["ENROUTE", "DELIVERED", "EXPIRED", "DELETED", "UNDELIVERABLE",
                                                      "REJECTED"]},
            "error_code": {"type": "string", "pattern": "^[0-9]{3}$",
                           "description": "The receipt's err: 000, a TP-Status 001-255, or 8xx of the gateway"},
            "segments": {"type": "integer"},
            "charge": _MONEY,
            "submitted_at": _TIME,
            "scheduled_at": {"type": ["string", "null"], "format": "date-time"},
            "done_at": {"type": ["string", "null"], "format": "date-time"},
            "client_ref": {"type": ["string", "null"]},
        },
    },
    "MessagePage": {
        "type": "object",
        "required": ["messages", "next_cursor"],
        "properties": {"messages": {"type": "array", "items": _ref("Message")},
                       "next_cursor": {"type": ["string", "null"],
                                       "description": "Pass as `cursor` for the next page; null on the last"}},
    },
    "InboxPage": {
        "type": "object",
        "required": ["messages", "next_after"],
        "properties": {
            "messages": {"type": "array", "items": {
                "type": "object",
                "required": ["id", "from", "to", "text", "received_at"],
                "properties": {"id": {"type": "integer"}, "from": {"type": "string"},
                               "to": {"type": "string", "description": "The modem's number the handset sent to"},
                               "text": {"type": "string"}, "received_at": _TIME},
            }},
            "next_after": {"type": ["integer", "null"], "description": "Pass as `after` for the next page"},
        },
    },
    "Balance": {
        "type": "object",
        "required": ["account", "balance", "currency"],
        "properties": {"account": {"type": "string"}, "balance": _MONEY, "currency": {"type": "string"}},
    },
    "Ledger": {
        "type": "object",
        "required": ["currency", "entries"],
        "properties": {
            "currency": {"type": "string"},
            "entries": {"type": "array", "items": {
                "type": "object",
                "required": ["at", "kind", "amount", "balance_after", "message_id", "note"],
                "properties": {
                    "at": _TIME,
                    "kind": {"type": "string",
                             "enum": ["charge", "refund", "topup", "adjust", "transfer_out", "transfer_in"]},
                    "amount": _MONEY, "balance_after": _MONEY,
                    "message_id": {"type": ["string", "null"]}, "note": {"type": "string"},
                },
            }},
        },
    },
    "SegmentsRequest": {
        "type": "object",
        "required": ["text"],
        "additionalProperties": False,
        "properties": {"text": {"type": "string", "minLength": 1},
                       "to": {"type": "string", "description": "Count by the route to this number (default: the "
                                                               "first route)"}},
    },
    "Segments": {
        "type": "object",
        "required": ["encoding", "characters", "segments", "max_segments", "fits"],
        "properties": {
            "encoding": {"type": "string", "enum": ["GSM7", "UCS2"]},
            "characters": {"type": "integer", "description": "As the alphabet counts them (a GSM extension "
                           "character counts 2), with the route's signature and suffix"},
            "segments": {"type": "integer"},
            "max_segments": {"type": "integer", "description": "The route's maximum"},
            "fits": {"type": "boolean", "description": "segments <= max_segments: a send would not be refused "
                     "for its length"},
        },
    },
}

_PATHS: Final[dict[str, Any]] = {
    "/api/v1/messages": {
        "post": {
            "operationId": "sendMessages",
            "summary": "Send a text to 1-1000 numbers: one message_id per number",
            "description": "Numbers that cannot be sent to are listed in `rejected`; the rest are accepted (201). "
                           "When none is accepted the answer is an error whose `rejected` member lists why.",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("SendRequest")}}},
            "responses": {
                "201": _json(_ref("SendResult"), "Accepted, maybe partly"),
                **_BAD_REQUEST,
                "402": _error("Nothing accepted: insufficient balance"),
                "403": _error("Nothing accepted: the sender ID is not allowed for this account or route"),
                "413": _error("The body is larger than `[http] max_body_bytes`"),
                **_AUTH_ERRORS,
                "429": _error("Throttled by the account's throughput_per_s (shared with its SMPP binds), with "
                              "`Retry-After`; or locked out after failed logins"),
                "503": _error("The store could not take the messages (nothing accepted), or auth checks are busy"),
            },
        },
        "get": {
            "operationId": "listMessages",
            "summary": "The account's messages, oldest first, page by page",
            "description": "With `Accept: text/csv`: the same rows as `smsgw history export`, the next page's "
                           "cursor in the `X-Next-Cursor` header.",
            "parameters": [
                {"name": "from", "in": "query", "required": False, "schema": _TIME,
                 "description": "Submitted at or after (ISO 8601 with offset)"},
                {"name": "to", "in": "query", "required": False, "schema": _TIME, "description": "Submitted before"},
                {"name": "state", "in": "query", "required": False, "schema": {"type": "string", "enum": _STATES}},
                {"name": "number", "in": "query", "required": False, "schema": {"type": "string"},
                 "description": "Destination number"},
                _LIMIT,
                {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"},
                 "description": "`next_cursor` of the previous page"},
            ],
            "responses": {
                "200": {"description": "A page", "content": {
                    "application/json": {"schema": _ref("MessagePage")},
                    "text/csv": {"schema": {"type": "string"}},
                }},
                **_BAD_REQUEST, **_AUTH_ERRORS,
            },
        },
    },
    "/api/v1/messages/{message_id}": {
        "get": {
            "operationId": "getMessage",
            "summary": "One message's state",
            "parameters": [_MESSAGE_ID],
            "responses": {"200": _json(_ref("Message"), "The message"), "404": _error("No such message"),
                          **_AUTH_ERRORS},
        },
        "delete": {
            "operationId": "cancelMessage",
            "summary": "Cancel a message not yet handed to a modem or route (its charge is refunded)",
            "parameters": [_MESSAGE_ID],
            "responses": {"200": _json(_ref("Message"), "Cancelled: the message, now CANCELLED"),
                          "404": _error("No such message"),
                          "409": _error("Already handed to a modem or route, or final"), **_AUTH_ERRORS},
        },
    },
    "/api/v1/inbox": {
        "get": {
            "operationId": "inbox",
            "summary": "SMS from handsets routed to the account (MO), oldest first",
            "parameters": [
                {"name": "after", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0},
                 "description": "Only ids above this (`next_after` of the previous page)"},
                _LIMIT,
            ],
            "responses": {"200": _json(_ref("InboxPage"), "A page"), **_BAD_REQUEST, **_AUTH_ERRORS},
        },
    },
    "/api/v1/balance": {
        "get": {"operationId": "balance", "summary": "The account's prepaid balance",
                "responses": {"200": _json(_ref("Balance"), "The balance"), **_AUTH_ERRORS}},
    },
    "/api/v1/ledger": {
        "get": {"operationId": "ledger", "summary": "The account's latest ledger entries, oldest first",
                "parameters": [_LIMIT],
                "responses": {"200": _json(_ref("Ledger"), "The entries"), **_BAD_REQUEST, **_AUTH_ERRORS}},
    },
    "/api/v1/segments": {
        "post": {
            "operationId": "countSegments",
            "summary": "How a text would be sent: alphabet, length and segments by the route's rules",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("SegmentsRequest")}}},
            "responses": {"200": _json(_ref("Segments"), "The count"),
                          "400": _error("Invalid body, an invalid number, no route, or blocked content"),
                          **_AUTH_ERRORS},
        },
    },
    "/api/v1/openapi.json": {
        "get": {"operationId": "openapi", "summary": "This document", "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}}},
    },
    "/api/docs": {
        "get": {"operationId": "docs", "summary": "This document as a page", "security": [],
                "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}}},
    },
}

DOCUMENT: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {
        "title": "smsgw REST API",
        "version": smsgw.__version__,
        "description": "Send SMS and follow them: the same accounts, throttle, policy, charging, states and error "
                       "codes as SMPP. Errors are `application/problem+json` (RFC 9457).",
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}, {"basic": []}],
    "paths": _PATHS,
    "components": {
        "schemas": _SCHEMAS,
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "A key from `smsgw account api-key create SYSTEM_ID`"},
            "basic": {"type": "http", "scheme": "basic", "description": "The account's system_id and password"},
        },
    },
}

_TEMPLATE: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ doc.info.title }}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.45}
h2{border-bottom:1px solid #ccc;margin-top:2.5rem}.op{margin:1.5rem 0;padding:.5rem 1rem;border-left:4px solid #36c}
.method{font-weight:bold;text-transform:uppercase;margin-right:.5rem}code,pre{background:#f4f4f4}
pre{padding:.5rem;overflow:auto}table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem}
</style></head><body>
<h1>{{ doc.info.title }} <small>{{ doc.info.version }}</small></h1>
<p>{{ doc.info.description }}</p>
<p>Authentication: {% for name, s in doc.components.securitySchemes.items() %}<code>{{ s.scheme }}</code>
({{ s.description }}){% if not loop.last %}, or {% endif %}{% endfor %}.
Machine-readable: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>.</p>
<h2>Endpoints</h2>
{% for path, item in doc.paths.items() %}{% for method, op in item.items() %}
<div class="op" id="{{ op.operationId }}"><p><span class="method">{{ method }}</span><code>{{ path }}</code>
&mdash; {{ op.summary }}</p>
{% if op.description %}<p>{{ op.description }}</p>{% endif %}
{% if op.parameters %}<table><tr><th>parameter</th><th>in</th><th>type</th><th>meaning</th></tr>
{% for p in op.parameters %}<tr><td><code>{{ p.name }}</code></td><td>{{ p["in"] }}</td>
<td>{{ p.schema.type }}</td><td>{{ p.description or "" }}</td></tr>{% endfor %}</table>{% endif %}
{% if op.requestBody %}<p>Body: {% for type, c in op.requestBody.content.items() %}<code>{{ type }}</code>
<a href="#schema-{{ c.schema["$ref"].rsplit("/", 1)[1] }}">{{ c.schema["$ref"].rsplit("/", 1)[1] }}</a>
{% endfor %}</p>{% endif %}
<table><tr><th>status</th><th>meaning</th></tr>{% for status, r in op.responses.items() %}
<tr><td>{{ status }}</td><td>{{ r.description }}</td></tr>{% endfor %}</table></div>
{% endfor %}{% endfor %}
<h2>Schemas</h2>
{% for name, schema in doc.components.schemas.items() %}
<h3 id="schema-{{ name }}">{{ name }}</h3>{% if schema.description %}<p>{{ schema.description }}</p>{% endif %}
<table><tr><th>field</th><th>type</th><th>required</th><th>meaning</th></tr>
{% for field, p in schema.properties.items() %}<tr><td><code>{{ field }}</code></td>
<td>{% if p["$ref"] %}{{ p["$ref"].rsplit("/", 1)[1] }}{% else %}{{ p.type }}{% endif %}{% if p.enum %}: {{ p.enum | join(", ") }}{% endif %}</td>
<td>{{ "yes" if field in (schema.required or []) else "" }}</td><td>{{ p.description or "" }}</td></tr>
{% endfor %}</table>{% endfor %}
</body></html>
"""


@functools.cache
def html() -> str:
    """/api/docs: the document as a page, rendered once (it never changes while the process runs)."""
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.ChainableUndefined)
    return environment.from_string(_TEMPLATE).render(doc=DOCUMENT)
