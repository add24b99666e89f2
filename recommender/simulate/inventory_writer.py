"""The cluster inventory as ``kubectl get namespaces,nodes,pods,services,endpointslices
-A -o json`` prints it: one ``List`` whose items carry their own kind, keys sorted
(kubectl prints unstructured maps), four-space indent.

A snapshot shows the pods alive at that time plus the last three finished Job
pods of each CronJob (``successfulJobsHistoryLimit`` defaults to 3) in phase
``Succeeded``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from recommender.simulate.cluster import NS_PER_S, ClusterState, NodeState, PodState
from recommender.simulate.topology import ServiceSpec, Topology, WorkloadSpec

JOB_HISTORY = 3


def rfc3339(t_ns: int) -> str:
    """Second-precision RFC 3339, as Kubernetes prints metav1.Time.

    >>> rfc3339(0)
    '1970-01-01T00:00:00Z'
    """
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_ns // NS_PER_S))


def snapshot_pods(cluster: ClusterState, generation: str, at_ns: int) -> list[PodState]:
    """Pods a snapshot at ``at_ns`` shows: the generation's pods plus recent Job pods."""
    pods = [p for group in cluster.pods[generation].values() for p in group]
    for runs in cluster.runs.values():
        started = [p for p in runs if p.created_ns <= at_ns]
        finished = [p for p in started if (p.finished_ns or 0) <= at_ns]
        running = [p for p in started if (p.finished_ns or 0) > at_ns]
        pods += finished[-JOB_HISTORY:] + running
    return pods


def build_inventory(
    topology: Topology, cluster: ClusterState, generation: str, at_ns: int
) -> dict[str, Any]:
    """The List document of a snapshot."""
    items: list[dict[str, Any]] = [
        _namespace(n, labels, cluster) for n, labels in sorted(cluster.namespace_labels.items())
    ]
    items += [_node(n, topology) for n in cluster.nodes]
    pods = sorted(snapshot_pods(cluster, generation, at_ns), key=lambda p: (p.namespace, p.name))
    items += [_pod(p, at_ns) for p in pods]
    services = sorted(_all_services(topology), key=lambda s: (s.namespace, s.name))
    items += [_service(s, cluster) for s in services]
    by_namespace: dict[str, list[PodState]] = {}
    for pod in pods:
        by_namespace.setdefault(pod.namespace, []).append(pod)
    items += [_endpoint_slice(s, by_namespace.get(s.namespace, []), cluster) for s in services]
    return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}


def render_inventory(doc: dict[str, Any]) -> bytes:
    """kubectl's formatting: sorted keys, four-space indent, trailing newline."""
    return (json.dumps(doc, indent=4, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _uid(*parts: str) -> str:
    import hashlib

    h = hashlib.sha256("/".join(parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def _meta(
    kind: str, name: str, namespace: str | None, created: int, **extra: Any
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "creationTimestamp": rfc3339(created),
        "name": name,
        "resourceVersion": str(int(created // NS_PER_S) % 9_000_000 + 1000),
        "uid": _uid(kind, namespace or "", name),
    }
    if namespace is not None:
        meta["namespace"] = namespace
    meta.update({k: v for k, v in extra.items() if v is not None})
    return meta


def _namespace(name: str, labels: dict[str, str], cluster: ClusterState) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": _meta("Namespace", name, None, _epoch(cluster), labels=dict(labels)),
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def _epoch(cluster: ClusterState) -> int:
    """Cluster creation: a day before the oldest pod (cached on the state)."""
    if cluster.epoch_ns is None:
        cluster.epoch_ns = (
            min(p.created_ns for g in cluster.pods["train"].values() for p in g) - 86400 * NS_PER_S
        )
    return cluster.epoch_ns


def _node(node: NodeState, topology: Topology) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "podCIDR": node.pod_cidr,
        "podCIDRs": [node.pod_cidr],
        "providerID": f"kind://docker/{topology.cluster.name}/{node.name}",
    }
    if node.control_plane:
        spec["taints"] = [{"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"}]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": _meta("Node", node.name, None, 0, labels=dict(node.labels)),
        "spec": spec,
        "status": {
            "addresses": [
                {"address": node.ip, "type": "InternalIP"},
                {"address": node.name, "type": "Hostname"},
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "containerRuntimeVersion": "containerd://2.1.4",
                "kubeletVersion": "v1.34.0",
                "operatingSystem": "linux",
            },
        },
    }


def _owner(pod: PodState) -> dict[str, Any]:
    api = "batch/v1" if pod.owner_kind == "Job" else "apps/v1"
    return {
        "apiVersion": api,
        "blockOwnerDeletion": True,
        "controller": True,
        "kind": pod.owner_kind,
        "name": pod.owner_name,
        "uid": _uid(pod.owner_kind, pod.namespace, pod.owner_name),
    }


def _container(w: WorkloadSpec) -> dict[str, Any]:
    c: dict[str, Any] = {
        "image": f"registry.example.com/{w.namespace}/{w.name}:1.4.2",
        "imagePullPolicy": "IfNotPresent",
        "name": w.name,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }
    if w.ports:
        c["ports"] = [
            {
                k: v
                for k, v in (("containerPort", p.port), ("name", p.name), ("protocol", p.protocol))
                if v is not None
            }
            for p in w.ports
        ]
    if w.probe_port is not None:
        probe = {
            "httpGet": {"path": "/healthz", "port": w.probe_port, "scheme": "HTTP"},
            "periodSeconds": 10,
            "failureThreshold": 3,
            "successThreshold": 1,
            "timeoutSeconds": 1,
        }
        c["livenessProbe"] = probe
        c["readinessProbe"] = probe
    return c


def _pod(pod: PodState, at_ns: int) -> dict[str, Any]:
    w = pod.spec
    done = pod.finished_ns is not None and pod.finished_ns <= at_ns
    generate = pod.name.rsplit("-", 1)[0] + "-" if w.kind != "StatefulSet" else w.name + "-"
    spec = {
        "containers": [_container(w)],
        "dnsPolicy": "ClusterFirst",
        "enableServiceLinks": True,
        "nodeName": pod.node.name,
        "preemptionPolicy": "PreemptLowerPriority",
        "priority": 0,
        "restartPolicy": "Never" if w.kind in ("Job", "CronJob") else "Always",
        "schedulerName": "default-scheduler",
        "securityContext": {},
        "serviceAccount": w.service_account,
        "serviceAccountName": w.service_account,
        "terminationGracePeriodSeconds": 30,
    }
    if w.kind == "StatefulSet":
        spec["hostname"] = pod.name
    status = {
        "hostIP": pod.node.ip,
        "hostIPs": [{"ip": pod.node.ip}],
        "phase": "Succeeded" if done else "Running",
        "podIP": pod.ip,
        "podIPs": [{"ip": pod.ip}],
        "qosClass": "Burstable",
        "startTime": rfc3339(pod.created_ns),
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _meta(
            "Pod",
            pod.name,
            pod.namespace,
            pod.created_ns,
            generateName=generate,
            labels=dict(pod.labels),
            ownerReferences=[_owner(pod)],
            uid=pod.uid,
        ),
        "spec": spec,
        "status": status,
    }


def _all_services(topology: Topology) -> Iterable[ServiceSpec]:
    from recommender.simulate.topology import ServicePortSpec

    yield ServiceSpec("default", "kubernetes", {}, (ServicePortSpec(443, 6443, "https"),))
    if not any(s.namespace == "kube-system" and s.name == "kube-dns" for s in topology.services):
        yield ServiceSpec(
            "kube-system",
            "kube-dns",
            {"k8s-app": "kube-dns"},
            (
                ServicePortSpec(53, 53, "dns", "UDP"),
                ServicePortSpec(53, 53, "dns-tcp", "TCP"),
                ServicePortSpec(9153, 9153, "metrics", "TCP"),
            ),
        )
    yield from topology.services


def _service(s: ServiceSpec, cluster: ClusterState) -> dict[str, Any]:
    ip = cluster.service_ips[f"{s.namespace}/{s.name}"]
    ports = [
        {
            k: v
            for k, v in (
                ("name", p.name),
                ("port", p.port),
                ("protocol", p.protocol),
                ("targetPort", p.target_port),
            )
            if v is not None
        }
        for p in s.ports
    ]
    spec: dict[str, Any] = {
        "clusterIP": ip,
        "clusterIPs": [ip],
        "internalTrafficPolicy": "Cluster",
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "ports": ports,
        "sessionAffinity": "None",
        "type": "ClusterIP",
    }
    if s.selector:
        spec["selector"] = dict(s.selector)
    labels = (
        {"component": "apiserver", "provider": "kubernetes"}
        if s.name == "kubernetes" and s.namespace == "default"
        else None
    )
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta("Service", s.name, s.namespace, _epoch(cluster), labels=labels),
        "spec": spec,
        "status": {"loadBalancer": {}},
    }


def _slice_ports(s: ServiceSpec, backend: PodState | None) -> list[dict[str, Any]]:
    """EndpointSlice ports carry the resolved target port number."""
    out = []
    for p in s.ports:
        port = p.target_port
        if isinstance(port, str):
            if backend is None:
                continue
            port = backend.spec.resolve_port(port).port
        out.append(
            {
                k: v
                for k, v in (("name", p.name or ""), ("port", int(port)), ("protocol", p.protocol))
            }
        )
    return out


def _endpoint_slice(s: ServiceSpec, pods: list[PodState], cluster: ClusterState) -> dict[str, Any]:
    if s.namespace == "default" and s.name == "kubernetes":
        endpoints = [{"addresses": [cluster.apiserver_ip], "conditions": {"ready": True}}]
        meta = _meta(
            "EndpointSlice",
            "kubernetes",
            "default",
            _epoch(cluster),
            labels={"kubernetes.io/service-name": "kubernetes"},
        )
        return {
            "addressType": "IPv4",
            "apiVersion": "discovery.k8s.io/v1",
            "endpoints": endpoints,
            "kind": "EndpointSlice",
            "metadata": meta,
            "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
        }
    backends = [
        p
        for p in pods
        if p.namespace == s.namespace
        and p.finished_ns is None
        and s.selector
        and all(p.labels.get(k) == v for k, v in s.selector.items())
    ]
    endpoints = [
        {
            "addresses": [p.ip],
            "conditions": {"ready": True, "serving": True, "terminating": False},
            "nodeName": p.node.name,
            "targetRef": {"kind": "Pod", "name": p.name, "namespace": p.namespace, "uid": p.uid},
        }
        for p in backends
    ]
    suffix = _uid("slice", s.namespace, s.name)[:5]
    meta = _meta(
        "EndpointSlice",
        f"{s.name}-{suffix}",
        s.namespace,
        _epoch(cluster),
        generateName=f"{s.name}-",
        labels={
            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            "kubernetes.io/service-name": s.name,
        },
        ownerReferences=[
            {
                "apiVersion": "v1",
                "blockOwnerDeletion": True,
                "controller": True,
                "kind": "Service",
                "name": s.name,
                "uid": _uid("Service", s.namespace, s.name),
            }
        ],
    )
    return {
        "addressType": "IPv4",
        "apiVersion": "discovery.k8s.io/v1",
        "endpoints": endpoints,
        "kind": "EndpointSlice",
        "metadata": meta,
        "ports": _slice_ports(s, backends[0] if backends else None),
    }
