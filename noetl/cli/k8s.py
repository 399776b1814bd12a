"""`noetl k8s`: the kind dev cluster (what the Makefile's kind-* and k8s-* targets run)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noetl.cli.build import add_build_arguments
from noetl.errors import EXIT_OK

if TYPE_CHECKING:
    from noetl.deploy.k8s import ClusterOptions


class _Default:
    """The default of a ClusterOptions field (noetl/deploy/k8s.py), for --help and when not given.

    Looked up only when shown: importing noetl.deploy costs ~30 ms that `noetl --help` need not pay.
    """

    def __init__(self, field: str) -> None:
        self.field = field

    def __str__(self) -> str:
        from noetl.deploy.k8s import ClusterOptions

        return str(getattr(ClusterOptions(), self.field))


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "k8s",
        help="kind dev cluster: kind-create, deploy, redeploy, remove, reset, kind-delete",
        description=(
            "Drive the kind dev cluster named --cluster through the kubectl context kind-<cluster> only. "
            "Needs docker, kind and kubectl; exits 2 naming the one that is missing."
        ),
    )
    parser.add_argument(
        "--cluster", default=_Default("cluster"), help="kind cluster name (default: %(default)s)"
    )
    parser.add_argument(
        "--manifests",
        type=Path,
        default=_Default("manifests"),
        help="manifests directory (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=int,
        default=_Default("timeout"),
        help="seconds to wait for each rollout (default: %(default)s)",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    create = actions.add_parser("kind-create", help="create the kind cluster from ci/kind/config.yaml")
    create.add_argument(
        "--config",
        dest="kind_config",
        type=Path,
        default=_Default("kind_config"),
        help="kind config (default: %(default)s)",
    )
    create.set_defaults(handler=handle_kind_create)
    delete = actions.add_parser("kind-delete", help="delete the kind cluster")
    delete.set_defaults(handler=handle_kind_delete)

    deploy = actions.add_parser(
        "deploy",
        help="kind load the last build, apply the manifests with it, wait for both rollouts",
    )
    _add_tag_file(deploy)
    deploy.set_defaults(handler=handle_deploy)

    redeploy = actions.add_parser("redeploy", help="build the image, then deploy it")
    add_build_arguments(redeploy)
    redeploy.set_defaults(handler=handle_redeploy)

    remove = actions.add_parser("remove", help="delete the noetl namespace and everything in it")
    remove.set_defaults(handler=handle_remove)
    reset = actions.add_parser("reset", help="remove, then deploy the last build again (fresh database)")
    _add_tag_file(reset)
    reset.set_defaults(handler=handle_reset)


def _add_tag_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tag-file",
        type=Path,
        default=_Default("tag_file"),
        help="the last build's tag (default: %(default)s)",
    )


def _options(args: argparse.Namespace) -> ClusterOptions:
    from noetl.deploy.k8s import ClusterOptions

    given: dict[str, Any] = {}
    for field in ("cluster", "manifests", "timeout", "kind_config", "tag_file"):
        value = getattr(args, field, None)
        if value is not None and not isinstance(value, _Default):
            given[field] = value
    return ClusterOptions(**given)


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
