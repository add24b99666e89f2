"""Cluster inventory from the live API, read-only, through the ``kubernetes`` client.

Only list calls are made (namespaces, nodes, pods, services, endpointslices,
networkpolicies). Responses are consumed as raw JSON (``_preload_content=False``),
not as client model classes, so the objects are exactly what ``kubectl get -o
json`` prints and the file reader's parser serves both paths (FORMATS.md 4.1).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException, OpenApiException

from recommender.errors import InputError
from recommender.inventory.files import parse_inventory_items
from recommender.model import Inventory

#: Items per list page; the API server returns ``metadata.continue`` for more.
PAGE_SIZE = 500

#: (what, API group class, list method) for every resource the inventory reads.
RESOURCES: tuple[tuple[str, str, str], ...] = (
    ("namespaces", "CoreV1Api", "list_namespace"),
    ("nodes", "CoreV1Api", "list_node"),
    ("pods", "CoreV1Api", "list_pod_for_all_namespaces"),
    ("services", "CoreV1Api", "list_service_for_all_namespaces"),
    ("endpointslices", "DiscoveryV1Api", "list_endpoint_slice_for_all_namespaces"),
    ("networkpolicies", "NetworkingV1Api", "list_network_policy_for_all_namespaces"),
)

#: (connect, read) timeout per request, seconds.
REQUEST_TIMEOUT = (10, 120)


def build_configuration(
    kubeconfig: str | None = None,
    context: str | None = None,
    in_cluster: bool = False,
    host: str | None = None,
) -> client.Configuration:
    """A client configuration from ``host``, in-cluster config, or a kubeconfig.

    Raises
    ------
    InputError
        The kubeconfig or the in-cluster environment cannot be loaded.
    """
    cfg = client.Configuration()
    cfg.retries = 1  # fail fast on an unreachable server instead of urllib3's 3 retries
    where = kubeconfig or ("in-cluster config" if in_cluster else "kubeconfig")
    try:
        if host:
            cfg.host = host
        elif in_cluster:
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        else:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig,
                context=context,
                client_configuration=cfg,
                persist_config=False,
            )
    except (
        config.ConfigException,
        OSError,
        yaml.YAMLError,
        ValueError,
        TypeError,
        KeyError,
    ) as exc:
        raise InputError(
            where,
            f"cannot load cluster configuration: {exc}",
            hint="check --kubeconfig, --context or --in-cluster",
        ) from None
    return cfg


def _list_pages(call: Callable[..., Any], what: str, host: str) -> list[dict[str, Any]]:
    """All items of one list call, following ``metadata.continue``; kinds filled in."""
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {
            "limit": PAGE_SIZE,
            "_preload_content": False,
            "_request_timeout": REQUEST_TIMEOUT,
        }
        if token:
            kwargs["_continue"] = token
        doc = _decode(_request(call, what, host, kwargs), what, host)
        items.extend(_items_with_kind(doc, what, host))
        token = (doc.get("metadata") or {}).get("continue") or None
        if not token:
            return items


def _request(call: Callable[..., Any], what: str, host: str, kwargs: dict[str, Any]) -> bytes:
    """One list request; API and connection failures become one clear InputError."""
    try:
        response = call(**kwargs)
        return bytes(response.data)
    except ApiException as exc:
        reason = f"HTTP {exc.status} {exc.reason or ''}".strip()
        hint = (
            "check the credentials of the kubeconfig context"
            if exc.status == 401
            else "the inventory needs list permission on it"
            if exc.status == 403
            else None
        )
        raise InputError(host, f"cannot list {what}: {reason}", hint=hint) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise InputError(
            host, f"cannot reach the API server while listing {what}: {_short(exc)}"
        ) from None
    except OpenApiException as exc:
        raise InputError(host, f"cannot list {what}: {exc}") from None


def _short(exc: BaseException) -> str:
    """The innermost reason of a urllib3 error, on one line."""
    reason = getattr(exc, "reason", None) or exc
    return " ".join(str(reason).split())


def _decode(data: bytes, what: str, host: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(host, f"listing {what}: the response is not JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("items") or [], list):
        raise InputError(host, f"listing {what}: the response is not a Kubernetes list")
    return doc


def _items_with_kind(doc: dict[str, Any], what: str, host: str) -> list[dict[str, Any]]:
    """Items with ``apiVersion``/``kind`` taken from the typed list (``PodList`` -> ``Pod``)."""
    list_kind = str(doc.get("kind") or "")
    if not list_kind.endswith("List") or list_kind == "List":
        raise InputError(host, f"listing {what}: expected a typed list, got kind {list_kind!r}")
    kind = list_kind[: -len("List")]
    out = []
    for item in doc.get("items") or []:
        if not isinstance(item, dict):
            raise InputError(host, f"listing {what}: an item is not an object")
        out.append({"apiVersion": doc.get("apiVersion"), "kind": kind, **item})
    return out


def fetch_raw_items(
    api: client.ApiClient, host: str, on_list: Callable[[str, int], None] | None = None
) -> list[dict[str, Any]]:
    """Every object the inventory needs, as raw dicts with their kinds; ``on_list(what,
    n)`` after each resource is listed (progress)."""
    items: list[dict[str, Any]] = []
    for what, group, method in RESOURCES:
        group_api = getattr(client, group)(api)
        listed = _list_pages(getattr(group_api, method), what, host)
        items.extend(listed)
        if on_list is not None:
            on_list(what, len(listed))
    return items


def fetch_inventory(
    kubeconfig: str | None = None,
    context: str | None = None,
    in_cluster: bool = False,
    host: str | None = None,
    on_list: Callable[[str, int], None] | None = None,
) -> tuple[Inventory, list[dict[str, Any]]]:
    """Read the live cluster: the inventory plus the raw items for a snapshot.

    Parameters
    ----------
    kubeconfig, context
        Kubeconfig file (default: ``$KUBECONFIG`` or ``~/.kube/config``) and context.
    in_cluster
        Use the pod's service account instead of a kubeconfig.
    host
        API server URL without authentication (``kubectl proxy``, tests); wins
        over the other options.
    on_list
        Called with each resource name and its object count once listed.

    Raises
    ------
    InputError
        Configuration cannot be loaded, the server is unreachable, or a list
        call fails (one line, naming the server and the resource).
    """
    cfg = build_configuration(kubeconfig, context, in_cluster, host)
    with client.ApiClient(cfg) as api:
        items = fetch_raw_items(api, cfg.host, on_list)
    return parse_inventory_items(items, f"api:{cfg.host}"), items
