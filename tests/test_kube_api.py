"""Live-cluster reader and ``netpol inventory``, through the real ``kubernetes`` client.

A pytest-httpserver on 127.0.0.1 replays recorded API list responses from
``tests/fixtures/kube_api/`` (typed lists whose items carry no kind).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from pytest_httpserver import HTTPServer

from recommender.cli.parser import main
from recommender.errors import InputError
from recommender.inventory import kube_api
from recommender.inventory.files import read_inventory, render_inventory_list
from recommender.inventory.kube_api import build_configuration, fetch_inventory
from tests.conftest import FIXTURES

API = FIXTURES / "kube_api"
PAGE = {"limit": str(kube_api.PAGE_SIZE)}
ROUTES = {
    "/api/v1/namespaces": "namespaces.json",
    "/api/v1/nodes": "nodes.json",
    "/api/v1/services": "services.json",
    "/apis/discovery.k8s.io/v1/endpointslices": "endpointslices.json",
    "/apis/networking.k8s.io/v1/networkpolicies": "networkpolicies.json",
}


def _recorded(name: str) -> dict[str, object]:
    return json.loads((API / name).read_text())


def _serve_cluster(server: HTTPServer, skip: str | None = None) -> None:
    """Register every recorded list; pods come in two pages."""
    for path, name in ROUTES.items():
        if path != skip:
            server.expect_request(path, method="GET", query_string=PAGE).respond_with_json(
                _recorded(name)
            )
    page1 = _recorded("pods-page1.json")
    token = page1["metadata"]["continue"]
    server.expect_request("/api/v1/pods", method="GET", query_string=PAGE).respond_with_json(page1)
    server.expect_request(
        "/api/v1/pods", method="GET", query_string={**PAGE, "continue": token}
    ).respond_with_json(_recorded("pods-page2.json"))


@pytest.fixture
def cluster(httpserver: HTTPServer) -> HTTPServer:
    _serve_cluster(httpserver)
    return httpserver


def _url(server: HTTPServer) -> str:
    return server.url_for("").rstrip("/")


def _kubeconfig(tmp_path: Path, contexts: dict[str, str], current: str) -> Path:
    """A kubeconfig with one bearer-token user and a cluster per context."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": current,
        "clusters": [{"name": n, "cluster": {"server": url}} for n, url in contexts.items()],
        "users": [{"name": "reader", "user": {"token": "s3cr3t-token"}}],
        "contexts": [{"name": n, "context": {"cluster": n, "user": "reader"}} for n in contexts],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def test_fetch_builds_inventory_from_raw_lists(cluster: HTTPServer) -> None:
    inventory, items = fetch_inventory(host=_url(cluster))
    pods = {p.name: p for p in inventory.pods}
    # Both pod pages were read (the second only through the continue token).
    assert sorted(pods) == [
        "kube-proxy-d4z2n",
        "open-webui-0",
        "open-webui-ollama-78f7f9765c-jm7dw",
    ]
    assert pods["open-webui-0"].workload == "statefulset/open-webui"
    assert pods["open-webui-ollama-78f7f9765c-jm7dw"].workload == "deployment/open-webui-ollama"
    assert pods["kube-proxy-d4z2n"].host_network
    assert pods["open-webui-0"].ips == ("10.1.7.10",)
    assert [n.name for n in inventory.namespaces] == ["kube-system", "open-webui"]
    assert inventory.namespaces[1].labels["team"] == "ai"
    assert [n.name for n in inventory.nodes] == ["epm-node1"]
    assert len(inventory.services) == 2
    assert inventory.endpoint_slices[0].endpoints[0].pod == "open-webui/open-webui-0"
    assert [p["metadata"]["name"] for p in inventory.network_policies] == ["adservice"]
    # The kind is taken from the typed list and written onto each raw item.
    kinds = sorted({(i["apiVersion"], i["kind"]) for i in items})
    assert kinds == [
        ("discovery.k8s.io/v1", "EndpointSlice"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
        ("v1", "Namespace"),
        ("v1", "Node"),
        ("v1", "Pod"),
        ("v1", "Service"),
    ]
    assert inventory.sources == (f"api:{_url(cluster)}",)


def test_only_read_only_list_calls(cluster: HTTPServer) -> None:
    fetch_inventory(host=_url(cluster))
    cluster.check_assertions()
    methods = {request.method for request, _ in cluster.log}
    assert methods == {"GET"}
    assert len(cluster.log) == 7  # six resources, pods in two pages
    assert all(request.args.get("limit") == str(kube_api.PAGE_SIZE) for request, _ in cluster.log)


def test_live_snapshot_reads_back_identically(cluster: HTTPServer, tmp_path: Path) -> None:
    inventory, items = fetch_inventory(host=_url(cluster))
    snapshot = tmp_path / "snap.json"
    snapshot.write_bytes(render_inventory_list(items))
    from_file = read_inventory([snapshot])
    assert from_file.pods == inventory.pods
    assert from_file.namespaces == inventory.namespaces
    assert from_file.services == inventory.services
    assert from_file.endpoint_slices == inventory.endpoint_slices
    assert from_file.nodes == inventory.nodes
    assert from_file.network_policies == inventory.network_policies


def test_kubeconfig_points_at_server(cluster: HTTPServer, tmp_path: Path) -> None:
    config = _kubeconfig(tmp_path, {"lab": _url(cluster)}, current="lab")
    inventory, _ = fetch_inventory(kubeconfig=str(config))
    assert len(inventory.pods) == 3
    auth = {request.headers.get("Authorization") for request, _ in cluster.log}
    assert auth == {"Bearer s3cr3t-token"}


def test_context_selects_the_cluster(cluster: HTTPServer, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{_closed_port()}"
    config = _kubeconfig(tmp_path, {"dead": dead, "lab": _url(cluster)}, current="dead")
    inventory, _ = fetch_inventory(kubeconfig=str(config), context="lab")
    assert len(inventory.nodes) == 1
    with pytest.raises(InputError, match="cannot reach the API server while listing namespaces"):
        fetch_inventory(kubeconfig=str(config))


# ---------------------------------------------------------------------------
# Failures: one clear InputError
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason", "hint"),
    [(403, "Forbidden", "list permission"), (401, "Unauthorized", "credentials")],
    ids=["forbidden", "unauthorized"],
)
def test_failed_list_names_the_resource(
    httpserver: HTTPServer, status: int, reason: str, hint: str
) -> None:
    _serve_cluster(httpserver, skip="/api/v1/nodes")
    httpserver.expect_request("/api/v1/nodes").respond_with_json(
        {"kind": "Status", "status": "Failure", "reason": reason, "code": status}, status=status
    )
    with pytest.raises(InputError, match=rf"cannot list nodes: HTTP {status}") as err:
        fetch_inventory(host=_url(httpserver))
    assert err.value.path == _url(httpserver)
    assert hint in str(err.value)


def test_response_that_is_not_json(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/v1/namespaces").respond_with_data("<html>proxy</html>")
    with pytest.raises(InputError, match="listing namespaces: the response is not JSON"):
        fetch_inventory(host=_url(httpserver))


def test_untyped_list_is_rejected(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/v1/namespaces").respond_with_json({"kind": "List", "items": []})
    with pytest.raises(InputError, match="expected a typed list"):
        fetch_inventory(host=_url(httpserver))


def test_missing_kubeconfig(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot load cluster configuration") as err:
        fetch_inventory(kubeconfig=str(tmp_path / "absent"))
    assert err.value.path == str(tmp_path / "absent")


def test_unknown_context(cluster: HTTPServer, tmp_path: Path) -> None:
    config = _kubeconfig(tmp_path, {"lab": _url(cluster)}, current="lab")
    with pytest.raises(InputError, match="cannot load cluster configuration"):
        fetch_inventory(kubeconfig=str(config), context="prod")


def test_in_cluster_outside_a_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(InputError, match="in-cluster config: cannot load cluster configuration"):
        fetch_inventory(in_cluster=True)


def test_in_cluster_uses_service_account(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from kubernetes.config import incluster_config

    (tmp_path / "token").write_text("pod-token")
    (tmp_path / "ca.crt").write_text("not checked until a request is made")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(tmp_path / "ca.crt"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    cfg = build_configuration(in_cluster=True)
    assert cfg.host == "https://10.96.0.1:443"
    assert cfg.api_key["BearerToken"] == "bearer pod-token"


# ---------------------------------------------------------------------------
# netpol inventory
# ---------------------------------------------------------------------------


def test_command_writes_snapshot(
    cluster: HTTPServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "inventory.json"
    assert main(["inventory", "--out", str(out), "--server", _url(cluster)]) == 0
    err = capsys.readouterr().err
    assert "3 pods" in err
    assert "2 namespaces" in err
    doc = json.loads(out.read_bytes())
    assert doc["kind"] == "List"
    assert len(doc["items"]) == 10
    first = out.read_bytes()
    # Refuses to overwrite, then replaces byte-identically with --force.
    assert main(["inventory", "--out", str(out), "--server", _url(cluster)]) == 2
    assert "already exists (pass --force" in capsys.readouterr().err
    assert main(["inventory", "--out", str(out), "--server", _url(cluster), "--force"]) == 0
    assert out.read_bytes() == first


def test_command_kubeconfig_and_context(cluster: HTTPServer, tmp_path: Path) -> None:
    config = _kubeconfig(tmp_path, {"lab": _url(cluster)}, current="lab")
    out = tmp_path / "inv.json"
    argv = ["inventory", "--out", str(out), "--kubeconfig", str(config), "--context", "lab"]
    assert main(argv) == 0
    assert len(read_inventory([out]).pods) == 3


def test_command_connection_error_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "inv.json"
    url = f"http://127.0.0.1:{_closed_port()}"
    assert main(["inventory", "--out", str(out), "--server", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {url}: cannot reach the API server while listing namespaces")
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert not out.exists()


# ---------------------------------------------------------------------------
# Defaulting and validation on the live path (the same as for files)
# ---------------------------------------------------------------------------


def _serve_with(server: HTTPServer, path: str, doc: dict[str, object]) -> None:
    """The recorded cluster with one list replaced by ``doc``."""
    _serve_cluster(server, skip=path)
    server.expect_request(path, method="GET", query_string=PAGE).respond_with_json(doc)


def test_live_objects_get_the_api_defaults(httpserver: HTTPServer) -> None:
    # An aggregated API or an old server may answer without the defaulted fields.
    services = _recorded("services.json")
    port = services["items"][0]["spec"]["ports"][0]
    port.pop("protocol")
    port["targetPort"] = 0
    services["items"][0]["spec"].pop("type")
    namespaces: Any = _recorded("namespaces.json")
    for ns in namespaces["items"]:
        ns["metadata"].get("labels", {}).pop("kubernetes.io/metadata.name", None)
    _serve_with(httpserver, "/api/v1/services", services)
    httpserver.expect_request(
        "/api/v1/namespaces", method="GET", query_string=PAGE
    ).respond_with_json(namespaces)
    inventory, _ = fetch_inventory(host=_url(httpserver))
    svc = next(s for s in inventory.services if s.name == "calico-etcd")
    assert (svc.type, svc.ports[0].protocol, svc.ports[0].target_port) == ("ClusterIP", "TCP", 6666)
    assert all(n.labels["kubernetes.io/metadata.name"] == n.name for n in inventory.namespaces)


def test_live_invalid_item_is_one_line_naming_it(
    httpserver: HTTPServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    namespaces = _recorded("namespaces.json")
    namespaces["items"][1]["metadata"]["labels"]["team"] = "a\nb"
    _serve_with(httpserver, "/api/v1/namespaces", namespaces)
    out = tmp_path / "snap.json"
    assert main(["inventory", "--out", str(out), "--server", _url(httpserver)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"error: api:{_url(httpserver)}: item 1 (Namespace open-webui): "
        "metadata.labels['team']: invalid label value 'a\\nb': <= 63 alphanumerics, "
        "'-', '_' or '.', starting and ending with an alphanumeric (or empty)"
    ]
    assert not out.exists()
