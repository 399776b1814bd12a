"""ci/manifests/: valid for a current Kubernetes, consistent with the image and the settings, and a
grace period longer than the stop the rendered supervisord config may take."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from supervisor.options import ServerOptions

from noetl.deploy import manifests
from noetl.settings import FIELDS, load_settings
from noetl.supervisor.assembly import assemble
from noetl.supervisor.render import SUPERVISORD_TICK, ControlAuth, max_stop_seconds, render

REPO = Path(__file__).resolve().parents[3]
MANIFESTS = REPO / "ci" / "manifests"
DOCKERFILE = (REPO / "docker" / "Dockerfile").read_text()
DOCS = manifests.load(MANIFESTS)
KUBERNETES = kubernetes_validate.utils.latest_version()


def find(kind: str, name: str) -> dict[str, Any]:
    return next(d for d in DOCS if d["kind"] == kind and d["metadata"]["name"] == name)


def noetl_container(deployment: str) -> dict[str, Any]:
    return manifests.noetl_containers(find("Deployment", deployment))[0]


def container_env(deployment: str) -> dict[str, str]:
    """The environment `noetl run` sees in that Deployment: ConfigMap, Secret, then env entries."""
    env: dict[str, str] = {}
    container = noetl_container(deployment)
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(find("ConfigMap", source["configMapRef"]["name"])["data"])
        if "secretRef" in source:
            env.update(find("Secret", source["secretRef"]["name"])["stringData"])
    env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    return env


def stop_seconds_of_rendered_config(text: str, tmp: Path) -> float:
    """Read the rendered config with supervisord's own parser: the groups stop one after another,
    the programs of a group in parallel (each up to its stopwaitsecs), each pass a loop tick, and
    supervisord's own exit one more tick."""
    path = tmp / "supervisord.conf"
    path.write_text(text)
    options = ServerOptions()
    options.realize(args=["-c", str(path)])
    groups = [max(p.stopwaitsecs for p in g.process_configs) for g in options.process_group_configs]
    return sum(groups) + SUPERVISORD_TICK * (len(groups) + 1)


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_every_manifest_validates_for_a_current_kubernetes(doc: dict[str, Any]) -> None:
    assert KUBERNETES >= "1.30"
    kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_the_set_is_complete() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in DOCS}
    assert {
        ("Namespace", "noetl"),
        ("ConfigMap", "noetl-config"),
        ("Secret", "noetl-secrets"),
        ("Deployment", "noetl-server"),
        ("Deployment", "noetl-worker"),
        ("Service", "noetl-server"),
        ("Deployment", "postgres"),
        ("Service", "postgres"),
        ("Deployment", "nats"),
        ("Service", "nats"),
    } <= kinds
    assert all(d["metadata"].get("namespace") == "noetl" for d in DOCS if d["kind"] != "Namespace")
    assert DOCS[0]["kind"] == "Namespace"


@pytest.mark.parametrize(("deployment", "role"), [("noetl-server", "server"), ("noetl-worker", "worker")])
def test_grace_period_outlasts_the_supervised_stop(deployment: str, role: str, tmp_path: Path) -> None:
    env = {**container_env(deployment), "NOETL_RUN_DIR": str(tmp_path / "run")}
    (tmp_path / "run" / "logs").mkdir(parents=True)
    settings = load_settings(env)
    assert settings.role == role
    assert noetl_container(deployment).get("command") is None  # the image's CMD: noetl run
    rendered = stop_seconds_of_rendered_config(
        render(assemble(settings, "python", False), ControlAuth.new()), tmp_path
    )
    budget = max(rendered, max_stop_seconds(settings))
    grace = find("Deployment", deployment)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > budget, f"{deployment}: grace {grace}s <= stop budget {budget}s"
    # The stop timeout that matters for the role is the one from the ConfigMap.
    longest = settings.stop_timeout if role == "server" else settings.worker_stop_timeout
    assert rendered >= longest + SUPERVISORD_TICK


def test_config_and_secret_hold_only_known_valid_settings() -> None:
    known = {field.env for field in FIELDS.values()}
    data = find("ConfigMap", "noetl-config")["data"]
    secret = find("Secret", "noetl-secrets")["stringData"]
    assert set(data) <= known
    assert set(secret) <= known
    assert all(isinstance(value, str) for value in data.values())
    settings = load_settings({**data, **secret})
    # Workers reach the server through its Service, on the port the server listens on.
    service = find("Service", "noetl-server")
    assert (
        settings.server_url == f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    )
    assert settings.postgres_host == "postgres" and settings.nats_url == "nats://nats:4222"


def test_server_probes_mean_health_and_readiness_on_the_api_port() -> None:
    container = noetl_container("noetl-server")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == load_settings(container_env("noetl-server")).port
    assert container["livenessProbe"]["httpGet"] == {"path": "/api/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/api/ready", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/api/health"


def test_worker_probes_ask_supervisord_through_the_healthcheck() -> None:
    container = noetl_container("noetl-worker")
    command = ["python", "-m", "noetl.deploy.healthcheck"]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["exec"]["command"] == command
    assert 'CMD ["python", "-m", "noetl.deploy.healthcheck"]' in DOCKERFILE


@pytest.mark.parametrize("deployment", ["noetl-server", "noetl-worker"])
def test_noetl_pods_run_as_the_images_non_root_user(deployment: str) -> None:
    uid, gid = re.search(r"^USER (\d+):(\d+)$", DOCKERFILE, re.M).groups()  # type: ignore[union-attr]
    home = re.search(r"NOETL_HOME=(\S+)", DOCKERFILE).group(1)  # type: ignore[union-attr]
    pod = find("Deployment", deployment)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(uid) != 0
    assert pod["securityContext"]["runAsGroup"] == int(gid)
    container = noetl_container(deployment)
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # A read-only root needs a writable NOETL_HOME (run dir, control socket) and /tmp. NOETL_HOME
    # sits one level under its mount: noetl creates it there, private (an emptyDir is 0777).
    if container["securityContext"].get("readOnlyRootFilesystem"):
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {str(Path(home).parent), "/tmp"} <= mounts and home not in mounts


def test_every_container_has_resources() -> None:
    for doc in DOCS:
        spec = manifests.pod_spec(doc)
        for container in (spec or {}).get("containers", []):
            resources = container.get("resources", {})
            assert resources.get("requests") and resources.get("limits", {}).get("memory"), container["name"]


def test_deploy_sets_the_image_of_the_noetl_containers_only() -> None:
    assert noetl_container("noetl-server")["image"] == manifests.PLACEHOLDER_IMAGE
    rendered = list(yaml.safe_load_all(manifests.render(MANIFESTS, "local/noetl:abc")))
    images = {
        (d["metadata"]["name"], c["name"]): c["image"]
        for d in rendered
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert images[("noetl-server", "noetl")] == "local/noetl:abc"
    assert images[("noetl-worker", "noetl")] == "local/noetl:abc"
    assert images[("postgres", "postgres")].startswith("postgres:")
    assert images[("nats", "nats")].startswith("nats:")
    assert manifests.with_image(DOCS, "x:1") is not DOCS
    assert noetl_container("noetl-server")["image"] == manifests.PLACEHOLDER_IMAGE  # input untouched


def test_service_selects_the_server_pods_and_kind_publishes_its_node_port() -> None:
    service = find("Service", "noetl-server")
    labels = find("Deployment", "noetl-server")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    worker_labels = find("Deployment", "noetl-worker")["spec"]["template"]["metadata"]["labels"]
    assert not service["spec"]["selector"].items() <= worker_labels.items()
    kind = yaml.safe_load((REPO / "ci" / "kind" / "config.yaml").read_text())
    mapping = kind["nodes"][0]["extraPortMappings"][0]
    assert mapping["containerPort"] == service["spec"]["ports"][0]["nodePort"]


def test_bad_yaml_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("kind: [unclosed\n")
    with pytest.raises(Exception, match=r"a.yaml is not valid YAML") as info:
        manifests.load(tmp_path)
    assert "\n" not in str(info.value)
