"""`noetl k8s`: the order of kind/kubectl steps, the kind context only, one-line errors.

No cluster can run on these machines, so the programs are recorded instead of run; what reaches a
real cluster is the command lines checked here and the manifests checked in test_manifests.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from noetl.deploy import k8s
from noetl.deploy.errors import DeployError, MissingToolError
from noetl.deploy.k8s import ClusterOptions, check_context
from noetl.errors import EXIT_CONFIG, ConfigError
from tests.unit.deploy.fakes import FakeEngine, RecordingRunner, which_only

REPO = Path(__file__).resolve().parents[3]
TAG = "local/noetl:20250101-000000"
ALL_TOOLS = which_only("docker", "kind", "kubectl")


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kubeconfig with the context kind writes for cluster noetl."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kind-noetl", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "kind-noetl", "user": {}}],
                "contexts": [
                    {"name": "kind-noetl", "context": {"cluster": "kind-noetl", "user": "kind-noetl"}}
                ],
                "current-context": "kind-noetl",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


def options(tmp_path: Path, tag: str | None = TAG) -> ClusterOptions:
    tag_file = tmp_path / ".noetl_last_build_tag.txt"
    if tag is not None:
        tag_file.write_text(tag + "\n")
    return ClusterOptions(
        manifests=REPO / "ci" / "manifests",
        kind_config=REPO / "ci" / "kind" / "config.yaml",
        tag_file=tag_file,
    )


def runner_with_cluster() -> RecordingRunner:
    return RecordingRunner(answers={("kind", "get", "clusters"): (0, "other\nnoetl\n")})


def test_deploy_loads_applies_and_waits_for_both_rollouts(tmp_path: Path, kubeconfig: Path) -> None:
    run = runner_with_cluster()
    tag = k8s.deploy(options(tmp_path), run, engine=FakeEngine({TAG}), which=ALL_TOOLS)
    assert tag == TAG
    assert run.argvs() == [
        ["kind", "get", "clusters"],
        ["kind", "load", "docker-image", TAG, "--name", "noetl"],
        ["kubectl", "--context", "kind-noetl", "apply", "-f", "-"],
        [
            "kubectl",
            "--context",
            "kind-noetl",
            "-n",
            "noetl",
            "rollout",
            "status",
            "deployment/noetl-server",
            "--timeout=180s",
        ],
        [
            "kubectl",
            "--context",
            "kind-noetl",
            "-n",
            "noetl",
            "rollout",
            "status",
            "deployment/noetl-worker",
            "--timeout=180s",
        ],
    ]
    applied = list(yaml.safe_load_all(run.calls[2].input or ""))
    images = {
        doc["metadata"]["name"]: [c["image"] for c in doc["spec"]["template"]["spec"]["containers"]]
        for doc in applied
        if doc["kind"] == "Deployment"
    }
    assert images["noetl-server"] == [TAG]
    assert images["noetl-worker"] == [TAG]
    assert images["postgres"] != [TAG]
    assert applied[0]["kind"] == "Namespace"  # applied before what lives in it


@pytest.mark.parametrize("missing", ["docker", "kind", "kubectl"])
def test_a_missing_tool_is_named_with_how_to_get_it(tmp_path: Path, missing: str) -> None:
    present = [t for t in ("docker", "kind", "kubectl") if t != missing]
    run = runner_with_cluster()
    with pytest.raises(MissingToolError) as info:
        k8s.deploy(options(tmp_path), run, engine=FakeEngine({TAG}), which=which_only(*present))
    message = str(info.value)
    assert message.startswith(f"{missing} not found on PATH: install ")
    assert "https://" in message and "\n" not in message
    assert info.value.exit_code == EXIT_CONFIG
    assert run.calls == []


def test_deploy_without_a_build_says_to_build(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="run `make build` first"):
        k8s.deploy(options(tmp_path, tag=None), runner_with_cluster(), FakeEngine(), ALL_TOOLS)


def test_deploy_of_an_image_the_engine_lacks_says_to_build(tmp_path: Path) -> None:
    run = runner_with_cluster()
    with pytest.raises(ConfigError, match=f"no image {TAG}: run `make build` first"):
        k8s.deploy(options(tmp_path), run, engine=FakeEngine(), which=ALL_TOOLS)
    assert run.calls == []


def test_deploy_without_the_cluster_says_to_create_it(tmp_path: Path) -> None:
    run = RecordingRunner(answers={("kind", "get", "clusters"): (0, "other\n")})
    with pytest.raises(ConfigError, match="no kind cluster named 'noetl': create it with `make kind-create`"):
        k8s.deploy(options(tmp_path), run, engine=FakeEngine({TAG}), which=ALL_TOOLS)
    assert [c.argv[:2] for c in run.calls] == [["kind", "get"]]


def test_a_rollout_that_never_gets_ready_names_the_deployment(tmp_path: Path, kubeconfig: Path) -> None:
    run = RecordingRunner(
        answers={
            ("kind", "get", "clusters"): (0, "noetl\n"),
            ("kubectl", "--context", "kind-noetl", "-n", "noetl", "rollout"): (1, ""),
        }
    )
    with pytest.raises(DeployError, match=r"deployment/noetl-server did not become ready within 180s"):
        k8s.deploy(options(tmp_path), run, engine=FakeEngine({TAG}), which=ALL_TOOLS)


def test_context_check_reads_the_kubeconfig(kubeconfig: Path) -> None:
    check_context("kind-noetl", str(kubeconfig))
    with pytest.raises(ConfigError, match="kubeconfig has no context 'kind-other'"):
        check_context("kind-other", str(kubeconfig))


def test_missing_kubeconfig_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no usable kubeconfig"):
        check_context("kind-noetl", str(tmp_path / "absent"))


def test_remove_deletes_the_namespace_in_the_kind_context_only(tmp_path: Path, kubeconfig: Path) -> None:
    run = runner_with_cluster()
    k8s.remove(options(tmp_path), run, which=ALL_TOOLS)
    assert run.argvs()[-1] == [
        "kubectl",
        "--context",
        "kind-noetl",
        "delete",
        "namespace",
        "noetl",
        "--ignore-not-found",
        "--wait=true",
        "--timeout=180s",
    ]


def test_reset_removes_then_deploys(tmp_path: Path, kubeconfig: Path) -> None:
    run = runner_with_cluster()
    k8s.reset(options(tmp_path), run, engine=FakeEngine({TAG}), which=ALL_TOOLS)
    verbs = [argv[3] if argv[0] == "kubectl" else argv[1] for argv in run.argvs()]
    assert verbs.index("delete") < verbs.index("load") < verbs.index("apply")


def test_kind_create_uses_the_config_and_skips_an_existing_cluster(tmp_path: Path) -> None:
    run = RecordingRunner(answers={("kind", "get", "clusters"): (0, "")})
    k8s.kind_create(options(tmp_path), run, which=which_only("docker", "kind"))
    assert run.argvs()[-1] == [
        "kind",
        "create",
        "cluster",
        "--name",
        "noetl",
        "--config",
        str(REPO / "ci/kind/config.yaml"),
        "--wait",
        "120s",
    ]
    again = runner_with_cluster()
    k8s.kind_create(options(tmp_path), again, which=which_only("docker", "kind"))
    assert [argv[1] for argv in again.argvs()] == ["get"]
