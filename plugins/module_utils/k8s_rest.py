"""The Kubernetes API as plain JSON: one place for the traffic backend, the deploy lock and the record.

The kubernetes client's ApiClient does the connection, TLS and credentials (kubeconfig, exec
plugins, in-cluster tokens); the bodies stay dicts. The generated typed API classes and models
would cost about a second of imports per module run, most of a rollback.

Every request carries a timeout (`timeout` seconds for the whole request), so no call can hang a
deploy. Errors are K8sError with a message for the operator; 404 and 409 have their own classes
because callers act on them (absent object, lost compare-and-swap).

Plain Python, no Ansible imports. The kubernetes client is imported only when a client is built.
"""

from __future__ import annotations

import contextlib
import json
import re

DEFAULT_TIMEOUT = 10.0
MANAGED_BY = {"app.kubernetes.io/managed-by": "free4allweb"}


class K8sError(Exception):
    """A request to the Kubernetes API failed. `status` is the HTTP status (None: no answer)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class NotFound(K8sError):
    """404: the object (or its namespace) does not exist."""


class Conflict(K8sError):
    """409: the object exists already (create) or changed since it was read (update, delete)."""


def load_client(kubeconfig: str | None = None, context: str | None = None, *, purpose: str = "this module"):
    """An ApiClient from a kubeconfig (file and/or context), else the default kubeconfig, else the
    in-cluster service account."""
    try:
        from kubernetes import config
    except ImportError:
        raise K8sError(f"{purpose} needs the Python 'kubernetes' client (pip install kubernetes)") from None
    try:
        if kubeconfig or context:
            return config.new_client_from_config(config_file=kubeconfig, context=context)
        try:
            return config.new_client_from_config()
        except config.ConfigException:
            config.load_incluster_config()
            from kubernetes.client import ApiClient

            return ApiClient()
    except Exception as exc:
        raise K8sError(f"cannot load Kubernetes credentials: {exc}") from None


_NAMESPACE_IN_PATH = re.compile(r"/namespaces/([^/]+)/")


class Client:
    """request() over an ApiClient; built from kubeconfig/context unless `api_client` is given."""

    def __init__(
        self,
        api_client=None,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        purpose: str = "this module",
    ):
        self.api = api_client if api_client is not None else load_client(kubeconfig, context, purpose=purpose)
        self.timeout = timeout

    def request(
        self, method: str, path: str, what: str, *, body=None, query=None, content_type=None, timeout=None
    ) -> dict:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        try:
            m, url, headers, body = self.api.param_serialize(
                method=method,
                resource_path=path,
                query_params=query,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )[:4]  # the fifth item (post params) is unused
            resp = self.api.call_api(m, url, header_params=headers, body=body, _request_timeout=timeout or self.timeout)
            resp.read()
        except Exception as exc:
            raise K8sError(f"{what}: cannot reach the Kubernetes API: {exc}") from None
        if resp.status == 404:
            ns = _NAMESPACE_IN_PATH.search(path + "/")
            where = f" in namespace {ns.group(1)}" if ns and not path.endswith(f"/namespaces/{ns.group(1)}") else ""
            raise NotFound(f"{what} not found{where}", 404)
        if resp.status == 409:
            if method == "POST":
                raise Conflict(f"{what} exists already (409 Conflict)", 409)
            raise Conflict(f"{what} was changed by someone else meanwhile (409 Conflict); nothing was overwritten", 409)
        if resp.status >= 400:
            try:
                message = json.loads(resp.data).get("message", "")
            except ValueError:
                message = (resp.data or b"")[:300]
            raise K8sError(f"{what}: {resp.status} {message}", resp.status)
        return json.loads(resp.data) if resp.data else {}

    def close(self) -> None:
        with contextlib.suppress(Exception):  # best effort on shutdown
            self.api.close()


def ensure_namespace(client, namespace: str) -> bool:
    """Create `namespace` (labelled as ours) unless it exists. True when this call created it."""
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": dict(MANAGED_BY)}}
    try:
        client.request("POST", "/api/v1/namespaces", f"Namespace {namespace}", body=body)
    except Conflict:
        return False
    return True


DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
