"""A playbook's steps as a picture: a simple layered layout, drawn as SVG by a template.

Each step sits in the layer of its longest path from ``start`` (arcs that go back up, as in a
retry loop, are left out of the layering and drawn curving round the side); the steps of a layer
sit side by side in file order. Arcs carry their ``when`` as a label. Pure: the caller gives the
parsed playbook, the template draws what ``layout`` returns.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from noetl.engine.playbook import Playbook

NODE_W, NODE_H = 168, 46
GAP_X, GAP_Y = 36, 58
MARGIN = 24
LABEL_MAX = 40  # characters of a `when` shown on the arc; the whole one is in its tooltip


@dataclass(frozen=True)
class Node:
    name: str
    x: int
    y: int
    desc: str
    loop: bool


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    path: str  # SVG path data
    label: str
    title: str
    label_x: int
    label_y: int
    back: bool


@dataclass(frozen=True)
class Graph:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int
    node_w: int = NODE_W
    node_h: int = NODE_H


def _layers(pb: Playbook) -> dict[str, int]:
    """The layer of each step: its longest distance from ``start`` along forward arcs."""
    order = list(pb.steps)
    # Forward arcs are those a depth-first walk from start does not find leading back (to a step
    # still on the walk's path). Iterative: a chain of thousands of steps is no recursion limit.
    back: set[tuple[str, str]] = set()
    state: dict[str, int] = {}  # 1: on the path, 2: done
    roots = ["start"] if "start" in pb.steps else order[:1]
    for root in [*roots, *order]:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(pb.targets.get(root, ())))]
        while stack:
            name, dests = stack[-1]
            dest = next(dests, None)
            if dest is None:
                state[name] = 2
                stack.pop()
            elif state.get(dest) == 1:
                back.add((name, dest))
            elif dest not in state:
                state[dest] = 1
                stack.append((dest, iter(pb.targets.get(dest, ()))))
    layer = {name: 0 for name in order}
    # Longest path over a DAG: relax in a topological order (Kahn's), file order breaking ties.
    incoming = {name: 0 for name in order}
    for src in order:
        for dest in pb.targets.get(src, ()):
            if (src, dest) not in back and dest in incoming:
                incoming[dest] += 1
    ready = deque(name for name in order if incoming[name] == 0)
    while ready:
        src = ready.popleft()
        for dest in pb.targets.get(src, ()):
            if (src, dest) in back or dest not in incoming:
                continue
            layer[dest] = max(layer[dest], layer[src] + 1)
            incoming[dest] -= 1
            if incoming[dest] == 0:
                ready.append(dest)
    return layer


def _label(when: object) -> str:
    if when is None:
        return ""
    text = " ".join(str(when).split())
    return text if len(text) <= LABEL_MAX else text[: LABEL_MAX - 1] + "…"


def layout(pb: Playbook) -> Graph:
    """Where each step and arc goes."""
    layer = _layers(pb)
    rows: dict[int, list[str]] = {}
    for name in pb.steps:
        rows.setdefault(layer[name], []).append(name)
    widest = max((len(r) for r in rows.values()), default=1)
    # Room on the right for arcs that curve back up.
    width = MARGIN * 2 + widest * NODE_W + (widest - 1) * GAP_X + GAP_X * 2
    nodes: dict[str, Node] = {}
    for depth, names in sorted(rows.items()):
        row_width = len(names) * NODE_W + (len(names) - 1) * GAP_X
        left = (width - GAP_X * 2 - row_width) // 2
        for i, name in enumerate(names):
            step = pb.steps[name]
            nodes[name] = Node(
                name=name,
                x=left + i * (NODE_W + GAP_X),
                y=MARGIN + depth * (NODE_H + GAP_Y),
                desc=step.desc or "",
                loop=step.loop is not None,
            )
    edges = []
    for src, step in pb.steps.items():
        whens: dict[str, object] = {}
        for arc in step.arcs:
            whens.setdefault(arc.step, arc.when)
        for dest in pb.targets.get(src, ()):
            if dest in nodes:
                edges.append(_edge(nodes[src], nodes[dest], whens.get(dest)))
    height = MARGIN * 2 + (max(layer.values(), default=0) + 1) * (NODE_H + GAP_Y) - GAP_Y
    return Graph(nodes=list(nodes.values()), edges=edges, width=width, height=height)


def _edge(src: Node, dest: Node, when: object) -> Edge:
    title = "" if when is None else str(when)
    if dest.y > src.y:
        x1, y1 = src.x + NODE_W // 2, src.y + NODE_H
        x2, y2 = dest.x + NODE_W // 2, dest.y
        mid = (y1 + y2) // 2
        path = f"M{x1},{y1} C{x1},{mid} {x2},{mid} {x2},{y2 - 2}"
        return Edge(src.name, dest.name, path, _label(when), title, (x1 + x2) // 2, mid, back=False)
    # Back (or sideways) arc: out of the source's right side, round, into the target's right side.
    x1, y1 = src.x + NODE_W, src.y + NODE_H // 2
    x2, y2 = dest.x + NODE_W, dest.y + NODE_H // 2
    bulge = max(x1, x2) + GAP_X
    path = f"M{x1},{y1} C{bulge},{y1} {bulge},{y2} {x2 + 2},{y2}"
    return Edge(src.name, dest.name, path, _label(when), title, bulge - 4, (y1 + y2) // 2, back=True)
