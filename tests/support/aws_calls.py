"""Name and classify the AWS API calls a moto server received, from its request recording.

moto_server records every request it gets (POST /moto-api/recorder/start-recording) as one JSON
line: method, URL, headers, body. That is the server's own view, so it counts every call from
every process (ansible modules, lookups, boto3 scripts) with nothing to instrument client-side.

The operation is read from the request itself:
  - query protocol (EC2, RDS, IAM, ELBv2, STS): the Action= form field of the body;
  - JSON protocol (Secrets Manager, ACM): the X-Amz-Target header;
  - REST protocol (S3, EKS, Route53): the HTTP method and path.
The service and region come from the SigV4 Authorization header's credential scope.
A call is read-only when its operation starts with Describe/List/Get/Head, or for REST when
the method is GET or HEAD; anything else changes something.
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

READ_PREFIXES = ("Describe", "List", "Get", "Head", "Lookup")
SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")


@dataclass(frozen=True)
class Call:
    service: str
    region: str
    operation: str
    mutating: bool


def _body(entry: dict) -> str:
    body = entry.get("body") or ""
    if entry.get("body_encoded"):
        try:
            body = base64.b64decode(body).decode("utf-8", "replace")
        except ValueError:
            return ""
    return body


def classify(entry: dict) -> Call | None:
    """One recorded request as a Call, or None for moto's own API (/moto-api/...)."""
    url = urlparse(entry.get("url", ""))
    if url.path.startswith("/moto-api"):
        return None
    headers = {k.lower(): v for k, v in (entry.get("headers") or {}).items()}
    scope = SCOPE.search(headers.get("authorization", ""))
    region, service = scope.groups() if scope else ("?", "?")
    method = entry.get("method", "GET").upper()

    target = headers.get("x-amz-target")
    if target:
        operation = target.rsplit(".", 1)[-1]
        return Call(service, region, operation, not operation.startswith(READ_PREFIXES))

    action = parse_qs(url.query).get("Action") or parse_qs(_body(entry)).get("Action")
    if action:
        operation = action[0]
        return Call(service, region, operation, not operation.startswith(READ_PREFIXES))

    path = re.sub(r"/(arn:[^?]*|[a-z0-9.-]{20,})", "/{id}", url.path) or "/"
    query = "&".join(sorted(parse_qs(url.query, keep_blank_values=True)))
    operation = f"{method} {path}" + (f"?{query}" if query else "")
    return Call(service, region, operation, method not in ("GET", "HEAD"))


def read_recording(text: str) -> list[Call]:
    calls = []
    for line in text.splitlines():
        if line.strip():
            call = classify(json.loads(line))
            if call:
                calls.append(call)
    return calls


def summary(calls: list[Call]) -> dict:
    return {
        "total": len(calls),
        "mutating": sum(c.mutating for c in calls),
        "by_service": dict(Counter(c.service for c in calls)),
        "mutating_operations": dict(Counter(f"{c.service}:{c.operation}" for c in calls if c.mutating)),
    }
