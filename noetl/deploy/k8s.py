"""The dev cluster: `noetl k8s kind-create|deploy|redeploy|remove|reset` and the Makefile targets.

Every kubectl call names the kind cluster's context (``kind-<cluster>``) explicitly, so these
commands never touch whatever cluster the current kubectl context points at.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from noetl.deploy import manifests
from noetl.deploy.build import TAG_FILE, read_last_tag
from noetl.deploy.engine import Engine, ImageStore
from noetl.deploy.errors import DeployError
from noetl.deploy.runner import Runner
from noetl.deploy.tools import Which, require_all, require_package
from noetl.errors import ConfigError

KIND_CONFIG = Path("ci/kind/config.yaml")
MANIFESTS = Path("ci/manifests")


@dataclass(frozen=True)
class ClusterOptions:
    cluster: str = "noetl"
    manifests: Path = MANIFESTS
    kind_config: Path = KIND_CONFIG
    tag_file: Path = TAG_FILE
    timeout: int = 180  # seconds, for each rollout and for the namespace deletion

    @property
    def context(self) -> str:
        return f"kind-{self.cluster}"


def kubectl(opts: ClusterOptions, *args: str) -> list[str]:
    return ["kubectl", "--context", opts.context, *args]


def cluster_exists(opts: ClusterOptions, run: Runner) -> bool:
    done = run(["kind", "get", "clusters"], capture=True)
    return opts.cluster in done.stdout.split()


def require_cluster(opts: ClusterOptions, run: Runner) -> None:
    if not cluster_exists(opts, run):
        raise ConfigError(f"no kind cluster named {opts.cluster!r}: create it with `make kind-create`")
    check_context(opts.context)


def check_context(context: str, kubeconfig: str | None = None) -> None:
    """The kubeconfig (KUBECONFIG or ~/.kube/config) must have ``context``, which kind writes."""
    require_package("kubernetes")
    from kubernetes import config

    try:
        contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)
    except config.ConfigException as exc:
        raise ConfigError(f"no usable kubeconfig ({exc}): `make kind-create` writes one") from None
    if context not in {c.get("name") for c in contexts or []}:
        raise ConfigError(
            f"kubeconfig has no context {context!r}: recreate the cluster with `make kind-create`, "
            "or merge its config with `kind export kubeconfig --name <cluster>`"
        )


def kind_create(
    opts: ClusterOptions, run: Runner, which: Which = shutil.which, out: TextIO = sys.stdout
) -> None:
    require_all(("docker", "kind"), which)
    if not opts.kind_config.is_file():
        raise ConfigError(f"no kind config at {opts.kind_config}: run from the noetl checkout")
    if cluster_exists(opts, run):
        print(f"kind cluster {opts.cluster!r} already exists", file=out)
        return
    argv = ["kind", "create", "cluster", "--name", opts.cluster, "--config", str(opts.kind_config)]
    run([*argv, "--wait", "120s"])
    print(f"kind cluster {opts.cluster!r} is up (context {opts.context}); next: `make k8s-deploy`", file=out)


def kind_delete(opts: ClusterOptions, run: Runner, which: Which = shutil.which) -> None:
    require_all(("docker", "kind"), which)
    run(["kind", "delete", "cluster", "--name", opts.cluster])


def deploy(
    opts: ClusterOptions,
    run: Runner,
    engine: ImageStore | None = None,
    which: Which = shutil.which,
    out: TextIO = sys.stdout,
) -> str:
    """Load the last built image into kind, apply the manifests with it, wait for the rollouts."""
    require_all(("docker", "kind", "kubectl"), which)
    tag = read_last_tag(opts.tag_file)
    rendered = manifests.render(opts.manifests, tag)
    engine = engine or Engine()
    if engine.image(tag) is None:
        raise ConfigError(f"the Docker engine has no image {tag}: run `make build` first")
    require_cluster(opts, run)
    run(["kind", "load", "docker-image", tag, "--name", opts.cluster])
    run(kubectl(opts, "apply", "-f", "-"), input=rendered)
    wait = f"--timeout={opts.timeout}s"
    for name in manifests.ROLLOUTS:
        try:
            run(kubectl(opts, "-n", manifests.NAMESPACE, "rollout", "status", f"deployment/{name}", wait))
        except DeployError:
            raise DeployError(
                f"deployment/{name} did not become ready within {opts.timeout}s; see "
                f"`kubectl --context {opts.context} -n {manifests.NAMESPACE} describe deployment/{name}`"
            ) from None
    print(f"deployed {tag} to namespace {manifests.NAMESPACE} of {opts.context}", file=out)
    return tag


def remove(opts: ClusterOptions, run: Runner, which: Which = shutil.which, out: TextIO = sys.stdout) -> None:
    """Delete the namespace and everything in it (the dev PostgreSQL's data too)."""
    require_all(("kind", "kubectl"), which)
    require_cluster(opts, run)
    wait = f"--timeout={opts.timeout}s"
    run(kubectl(opts, "delete", "namespace", manifests.NAMESPACE, "--ignore-not-found", "--wait=true", wait))
    print(f"removed namespace {manifests.NAMESPACE} from {opts.context}", file=out)


def reset(
    opts: ClusterOptions,
    run: Runner,
    engine: ImageStore | None = None,
    which: Which = shutil.which,
    out: TextIO = sys.stdout,
) -> str:
    """Remove everything, then deploy the last build again: a fresh database and stream."""
    require_all(("docker", "kind", "kubectl"), which)
    remove(opts, run, which, out)
    return deploy(opts, run, engine, which, out)
