"""Run the image the way ci/manifests/ runs it, against a real PostgreSQL and NATS on the host.

The containers sit on their own docker network; PostgreSQL and nats-server (the wheels the other
tests use) listen on that network's gateway address, so the containers reach them as they would
reach cluster services. Each container gets the environment, user, capabilities, read-only root,
writable emptyDirs and memory limit of its Deployment, with the backends' addresses on top.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from noetl.deploy import manifests
from tests.image.engine import REPO, docker
from tests.services import (
    Nats,
    Postgres,
    free_port,
    nats_server_binary,
    stop_pid,
    wait_until,
)

MANIFESTS = manifests.load(REPO / "ci" / "manifests")
PG_PASSWORD_KEY = "POSTGRES_PASSWORD"


def find(kind: str, name: str) -> dict[str, Any]:
    return next(d for d in MANIFESTS if d["kind"] == kind and d["metadata"]["name"] == name)


def run_as(deployment: str) -> tuple[int, int]:
    """The Deployment pod's (runAsUser, runAsGroup)."""
    pod_sc = find("Deployment", deployment)["spec"]["template"]["spec"]["securityContext"]
    return int(pod_sc["runAsUser"]), int(pod_sc["runAsGroup"])


def grace_seconds(deployment: str) -> int:
    return int(find("Deployment", deployment)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])


# --- backends on the host, reachable from the network ----------------------------------------


@dataclass
class Backends:
    network: str
    gateway: str
    subnet: str
    pg: Postgres
    tmp: Path

    def new_database(self, owner: str, password: str) -> str:
        """A fresh database owned by ``owner``, who logs in with ``password`` (scram over TCP)."""
        name = "noetl_image_" + secrets.token_hex(3)
        self.pg.sql(
            f'DO $$ BEGIN CREATE ROLE "{owner}" LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$'
        )
        self.pg.sql(f"ALTER ROLE \"{owner}\" PASSWORD '{password}'")
        self.pg.sql(f'CREATE DATABASE "{name}" OWNER "{owner}"')
        return name

    @contextlib.contextmanager
    def nats(self) -> Iterator[Nats]:
        """A nats-server with JetStream on the gateway address, stopped by PID."""
        store = self.tmp / f"nats-{secrets.token_hex(3)}"
        store.mkdir()
        port, monitor = free_port(), free_port()
        log = (store / "nats.log").open("ab")
        proc = subprocess.Popen(
            [
                nats_server_binary(),
                "-js",
                "-sd",
                str(store),
                "-a",
                self.gateway,
                "-p",
                str(port),
                "-m",
                str(monitor),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        server = Nats(url=f"nats://{self.gateway}:{port}", port=port, monitor_port=monitor, store_dir=store)
        server.proc = proc
        try:
            wait_until(lambda: _http_ok(f"http://{self.gateway}:{monitor}/healthz"), 15, "nats-server")
            yield server
        finally:
            stop_pid(proc)


@contextlib.contextmanager
def backends_on_network(network: str, tmp: Path) -> Iterator[Backends]:
    docker("network", "create", network)
    try:
        ipam = json.loads(docker("network", "inspect", network, "-f", "{{json .IPAM.Config}}").stdout)[0]
        gateway, subnet = ipam["Gateway"], ipam["Subnet"]
        os.chmod(tmp, 0o755)  # the PostgreSQL user must reach its directories
        pg = Postgres(
            port=free_port(),
            data_dir=tmp / "pgdata",
            sock_dir=tmp / "pgsock",
            log_path=tmp / "pg.log",
            listen=f"127.0.0.1,{gateway}",
        )
        pg.init()
        with (pg.data_dir / "pg_hba.conf").open("a") as fh:
            fh.write(f"host all all {subnet} scram-sha-256\n")
        pg.start()
        try:
            yield Backends(network=network, gateway=gateway, subnet=subnet, pg=pg, tmp=tmp)
        finally:
            pg.stop()
    finally:
        docker("network", "rm", network, check=False)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


# --- containers as the manifests run them ----------------------------------------------------


def _memory(quantity: str) -> str:
    for suffix, unit in (("Gi", "g"), ("Mi", "m"), ("Ki", "k")):
        if quantity.endswith(suffix):
            return quantity[: -len(suffix)] + unit
    return quantity


def pod_run_args(deployment: str) -> tuple[list[str], dict[str, str]]:
    """`docker run` options and environment equivalent to the Deployment's noetl container."""
    doc = find("Deployment", deployment)
    pod = doc["spec"]["template"]["spec"]
    container = manifests.noetl_containers(doc)[0]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(find("ConfigMap", source["configMapRef"]["name"])["data"])
        if "secretRef" in source:
            env.update(find("Secret", source["secretRef"]["name"])["stringData"])
    env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})

    sc = container.get("securityContext", {})
    uid, gid = run_as(deployment)
    args = ["--user", f"{uid}:{gid}"]
    if sc.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    if "ALL" in sc.get("capabilities", {}).get("drop", []):
        args += ["--cap-drop", "ALL"]
    if sc.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    empty_dirs = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
    for mount in container.get("volumeMounts", []):
        if mount["name"] in empty_dirs:
            # An emptyDir with fsGroup: writable by the pod's user.
            args += ["--tmpfs", f"{mount['mountPath']}:uid={uid},gid={gid},mode=0770"]
    limit = container.get("resources", {}).get("limits", {}).get("memory")
    if limit:
        args += ["--memory", _memory(limit)]
    return args, env


@dataclass
class Container:
    name: str
    deployment: str
    id: str = ""
    published: int | None = None
    started: float = field(default_factory=time.monotonic)

    def inspect(self, template: str) -> str:
        return docker("inspect", "-f", template, self.name).stdout.strip()

    def health(self) -> str:
        return self.inspect("{{if .State.Health}}{{.State.Health.Status}}{{end}}")

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.inspect("{{.State.Running}}") != "true":
                raise AssertionError(f"{self.name} exited:\n{self.logs()[-4000:]}")
            if self.health() == "healthy":
                return
            time.sleep(0.5)
        raise AssertionError(f"{self.name} not healthy after {timeout}s:\n{self.logs()[-4000:]}")

    def exec(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return docker("exec", self.name, *argv, check=False, timeout=timeout)

    def logs(self) -> str:
        return docker("logs", self.name, check=False).stdout

    def stop(self, grace: int) -> tuple[int, float]:
        """`docker stop -t grace` (SIGTERM, SIGKILL after grace s): (exit code, seconds it took)."""
        begin = time.monotonic()
        docker("stop", "-t", str(grace), self.name, timeout=grace + 60)
        took = time.monotonic() - begin
        return int(self.inspect("{{.State.ExitCode}}")), took

    def remove(self) -> None:
        docker("rm", "-f", self.name, check=False)


def run_container(
    image: str,
    name: str,
    backends: Backends,
    deployment: str,
    overrides: dict[str, str],
    publish: bool = False,
    aliases: tuple[str, ...] = (),
) -> Container:
    """Start ``image`` as ``deployment`` runs it, with ``overrides`` on its environment."""
    args, env = pod_run_args(deployment)
    env.update(overrides)
    argv = ["run", "-d", "--name", name, "--network", backends.network, "--health-interval", "1s", *args]
    for alias in aliases:
        argv += ["--network-alias", alias]
    if publish:
        argv += ["-p", "127.0.0.1::8082"]
    for key, value in env.items():
        argv += ["-e", f"{key}={value}"]
    container = Container(name=name, deployment=deployment, id=docker(*argv, image).stdout.strip())
    if publish:
        port = container.inspect('{{(index (index .NetworkSettings.Ports "8082/tcp") 0).HostPort}}')
        container.published = int(port)
    return container


# --- the API through the published port -------------------------------------------------------


def api(port: int, method: str, path: str, body: Any = None) -> Any:
    """A client's call, with the client token the manifests' Secret gives the server."""
    data = None if body is None else json.dumps(body).encode()
    token = find("Secret", "noetl-secrets")["stringData"]["NOETL_API_TOKEN"]
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method=method,
        headers={"content-type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def submit(port: int, command: str, timeout: int = 60) -> str:
    answer = api(
        port, "POST", "/api/executions", {"tool": {"kind": "shell", "command": command}, "timeout": timeout}
    )
    return str(answer["execution_id"])


def wait_status(port: int, execution_id: str, wanted: set[str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = api(port, "GET", f"/api/executions/{execution_id}")
        if last["status"] in wanted:
            return last
        time.sleep(0.2)
    raise AssertionError(f"execution {execution_id} not {wanted} after {timeout}s: {last}")


@dataclass
class Stack:
    server: Container
    worker: Container
    nats: Nats
    database: str

    @property
    def port(self) -> int:
        assert self.server.published is not None
        return self.server.published


@contextlib.contextmanager
def manifest_stack(image: str, backends: Backends, prefix: str) -> Iterator[Stack]:
    """The server and worker Deployments as two containers, with a fresh database and NATS."""
    _, server_env = pod_run_args("noetl-server")
    user = server_env["POSTGRES_USER"]
    database = backends.new_database(user, server_env[PG_PASSWORD_KEY])
    server_name = f"{prefix}-server"
    with backends.nats() as nats:
        overrides = {
            "POSTGRES_HOST": backends.gateway,
            "POSTGRES_PORT": str(backends.pg.port),
            "POSTGRES_DB": database,
            "NATS_URL": nats.url,
            # The Service name from the ConfigMap would be ambiguous between test runs on one engine.
            "NOETL_SERVER_URL": f"http://{server_name}:8082",
        }
        server = worker = None
        try:
            server = run_container(image, server_name, backends, "noetl-server", overrides, publish=True)
            worker = run_container(image, f"{prefix}-worker", backends, "noetl-worker", overrides)
            yield Stack(server=server, worker=worker, nats=nats, database=database)
        finally:
            for container in (worker, server):
                if container is not None:
                    container.remove()
