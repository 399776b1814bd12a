"""`noetl k8s`: the kind dev cluster (what the Makefile's kind-* and k8s-* targets run)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from noetl.cli.build import add_build_arguments
from noetl.errors import EXIT_OK

if TYPE_CHECKING:
    from noetl.deploy.k8s import ClusterOptions


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "k8s",
        help="kind dev cluster: kind-create, deploy, redeploy, remove, reset, kind-delete",
        description=(
            "Drive the kind dev cluster named --cluster through the kubectl context kind-<cluster> only. "
            "Needs docker, kind and kubectl; exits 2 naming the one that is missing."
        ),
    )
    parser.add_argument("--cluster", default="noetl", help="kind cluster name (default: noetl)")
    parser.add_argument("--manifests", type=Path, default=Path("ci/manifests"), help="default: ci/manifests")
    parser.add_argument(
        "--timeout", type=int, default=180, help="seconds to wait for each rollout (default: 180)"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    create = actions.add_parser("kind-create", help="create the kind cluster from ci/kind/config.yaml")
    create.add_argument("--config", type=Path, default=Path("ci/kind/config.yaml"), help="kind config")
    create.set_defaults(handler=handle_kind_create)
    delete = actions.add_parser("kind-delete", help="delete the kind cluster")
    delete.set_defaults(handler=handle_kind_delete)

    deploy = actions.add_parser(
        "deploy",
        help="kind load the last build, apply the manifests with it, wait for both rollouts",
    )
    deploy.add_argument("--tag-file", type=Path, default=Path(".noetl_last_build_tag.txt"))
    deploy.set_defaults(handler=handle_deploy)

    redeploy = actions.add_parser("redeploy", help="build the image, then deploy it")
    add_build_arguments(redeploy)
    redeploy.set_defaults(handler=handle_redeploy)

    remove = actions.add_parser("remove", help="delete the noetl namespace and everything in it")
    remove.set_defaults(handler=handle_remove)
    reset = actions.add_parser("reset", help="remove, then deploy the last build again (fresh database)")
    reset.add_argument("--tag-file", type=Path, default=Path(".noetl_last_build_tag.txt"))
    reset.set_defaults(handler=handle_reset)


def _options(args: argparse.Namespace) -> ClusterOptions:
    from noetl.deploy.k8s import ClusterOptions

    extra = {}
    if getattr(args, "config", None) is not None:
        extra["kind_config"] = args.config
    if getattr(args, "tag_file", None) is not None:
        extra["tag_file"] = args.tag_file
    return ClusterOptions(cluster=args.cluster, manifests=args.manifests, timeout=args.timeout, **extra)


def handle_kind_create(args: argparse.Namespace) -> int:
    from noetl.deploy.k8s import kind_create
    from noetl.deploy.runner import SubprocessRunner

    kind_create(_options(args), SubprocessRunner())
    return EXIT_OK


def handle_kind_delete(args: argparse.Namespace) -> int:
    from noetl.deploy.k8s import kind_delete
    from noetl.deploy.runner import SubprocessRunner

    kind_delete(_options(args), SubprocessRunner())
    return EXIT_OK


def handle_deploy(args: argparse.Namespace) -> int:
    from noetl.deploy.k8s import deploy
    from noetl.deploy.runner import SubprocessRunner

    deploy(_options(args), SubprocessRunner())
    return EXIT_OK


def handle_redeploy(args: argparse.Namespace) -> int:
    import dataclasses

    from noetl.cli.build import build_options, describe
    from noetl.deploy.build import build_image
    from noetl.deploy.k8s import deploy
    from noetl.deploy.runner import SubprocessRunner
    from noetl.deploy.tools import require_all

    run = SubprocessRunner()
    opts = build_options(args)
    # Check every tool before a build that takes minutes.
    require_all(("docker", "kind", "kubectl"))
    built = build_image(opts, run)
    print(describe(built))
    deploy(dataclasses.replace(_options(args), tag_file=opts.tag_file_path()), run)
    return EXIT_OK


def handle_remove(args: argparse.Namespace) -> int:
    from noetl.deploy.k8s import remove
    from noetl.deploy.runner import SubprocessRunner

    remove(_options(args), SubprocessRunner())
    return EXIT_OK


def handle_reset(args: argparse.Namespace) -> int:
    from noetl.deploy.k8s import reset
    from noetl.deploy.runner import SubprocessRunner

    reset(_options(args), SubprocessRunner())
    return EXIT_OK
