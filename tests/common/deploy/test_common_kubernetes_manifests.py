"""The shipped Kubernetes layout, read as the cluster would read it.

Behind the Ingress every request reaches the gateway from the ingress controller; unless
the gateway believes that controller's X-Forwarded-For, all clients share one address and
every per-client limit becomes global. The services behind the gateway must believe no
forwarded address from any pod, and the network policies keep every other pod away from
the gateway and the services.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Any

import pytest
import yaml

from hds_codes.config import Settings as CodesSettings
from hds_gateway.config import Settings as GatewaySettings
from tests.common.support import REPO

LAYOUT = REPO / "deploy/kubernetes"
SERVICES = ("auth", "codes", "storage", "dlx")
# Who calls whom inside the suite (the internal clients each service builds).
CALLERS = {
    "auth": {"gateway", "codes", "storage", "dlx"},
    "codes": {"gateway", "dlx"},
    "storage": {"gateway", "auth", "codes", "dlx"},
    "dlx": {"gateway"},
}
MONITORING = {"kubernetes.io/metadata.name": "monitoring"}


def resources() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((LAYOUT / "kustomization.yaml").read_text())
    found: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        found += [doc for doc in yaml.safe_load_all((LAYOUT / name).read_text()) if doc]
    return found


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in resources() if doc["kind"] == kind}


def config() -> dict[str, str]:
    data: dict[str, str] = of_kind("ConfigMap")["hds-config"]["data"]
    return data


def test_the_gateway_believes_the_ingress_controller(monkeypatch: pytest.MonkeyPatch) -> None:
    # The gateway's settings as its pod gets them: the ConfigMap as its environment.
    for name in [name for name in os.environ if name.startswith("HDS_")]:
        monkeypatch.delenv(name)
    for name, value in config().items():
        monkeypatch.setenv(name, value)
    # From the Secret "hds-secrets", created out of band.
    monkeypatch.setenv("HDS_INTERNAL_SECRET", "a-random-value-from-the-secret")
    settings = GatewaySettings()
    assert settings.trusted_proxies, "behind the Ingress all clients would share one address"
    for entry in settings.trusted_proxies:
        network = ipaddress.ip_network(entry, strict=False)
        # The cluster's own network, never the internet the clients come from.
        assert network.is_private


def test_the_services_are_not_told_to_believe_forwarded_addresses() -> None:
    # The setting is gone: services believe only the client address the gateway signs. A
    # leftover in the ConfigMap would suggest an allow-list that protects nothing.
    assert "HDS_FORWARDED_ALLOW_IPS" not in config()


def _peers(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return [peer for rule in policy["spec"].get("ingress", []) for peer in rule.get("from", [])]


def test_network_policies_admit_only_the_ingress_to_the_gateway_and_callers_to_services() -> None:
    policies = of_kind("NetworkPolicy")
    deny = [p for p in policies.values() if p["spec"]["podSelector"] == {}]
    assert deny
    assert all("ingress" not in p["spec"] and p["spec"]["policyTypes"] == ["Ingress"] for p in deny)
    selected: dict[str, list[dict[str, Any]]] = {}
    for policy in policies.values():
        labels = policy["spec"]["podSelector"].get("matchLabels", {})
        if name := labels.get("app.kubernetes.io/name"):
            selected.setdefault(name, []).extend(_peers(policy))

    gateway = selected["hds-gateway"]
    assert all("namespaceSelector" in peer for peer in gateway), "no pod of hds reaches it"
    assert [p for p in gateway if p["namespaceSelector"]["matchLabels"] != MONITORING] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx"}},
        }
    ]
    for service in SERVICES:
        pods = {
            peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"].removeprefix("hds-")
            for peer in selected[f"hds-{service}"]
            if "namespaceSelector" not in peer
        }
        others = [
            peer["namespaceSelector"]["matchLabels"]
            for peer in selected[f"hds-{service}"]
            if "namespaceSelector" in peer
        ]
        assert pods == CALLERS[service], service
        assert others == [MONITORING], service


def _mebibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * (1024 if unit == "Gi" else 1)


def test_the_codes_pods_have_room_for_their_argon2id_runs() -> None:
    deployment = of_kind("Deployment")["hds-codes"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item["value"] for item in container.get("env", [])}
    settings = CodesSettings(kdf_concurrency=int(env["HDS_CODES_KDF_CONCURRENCY"]))
    argon2_mib = settings.kdf_concurrency * settings.argon2_memory_kib / 1024
    limit = _mebibytes(container["resources"]["limits"]["memory"])
    # The process itself needs about 150 MiB besides the Argon2id memory.
    assert limit >= argon2_mib + 150
