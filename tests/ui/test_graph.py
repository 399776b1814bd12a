"""The step graph's layout: layers by longest path, arcs back up drawn aside, `when` labels."""

from __future__ import annotations

from noetl.engine.playbook import parse_playbook
from noetl.server.ui.graph import LABEL_MAX, NODE_H, layout

HEAD = "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: g}\nworkflow:\n"


def graph_of(steps: str) -> dict[str, tuple[int, int]]:
    g = layout(parse_playbook(HEAD + steps))
    return {n.name: (n.x, n.y) for n in g.nodes}


def test_a_diamond_puts_the_join_below_its_longest_branch() -> None:
    pb = parse_playbook(
        HEAD
        + """
  - step: start
    next: {spec: {mode: inclusive}, arcs: [{step: a, when: "{{ workload.x > 1 }}"}, {step: b}]}
  - step: a
    next: a2
  - step: a2
    next: join
  - step: b
    next: join
  - step: join
"""
    )
    g = layout(pb)
    at = {n.name: n for n in g.nodes}
    layer = {name: (node.y - at["start"].y) // (NODE_H + 58) for name, node in at.items()}
    assert layer == {"start": 0, "a": 1, "b": 1, "a2": 2, "join": 3}
    assert at["a"].x < at["b"].x  # file order within a layer
    labels = {(e.source, e.target): e.label for e in g.edges}
    assert labels == {
        ("start", "a"): "{{ workload.x > 1 }}",
        ("start", "b"): "",
        ("a", "a2"): "",
        ("a2", "join"): "",
        ("b", "join"): "",
    }
    assert all(n.x >= 0 and n.x + g.node_w <= g.width and n.y + g.node_h <= g.height for n in g.nodes)


def test_an_arc_back_up_does_not_push_its_target_down() -> None:
    pb = parse_playbook(
        HEAD
        + """
  - step: start
    next: work
  - step: work
    next:
      - {step: start, when: "{{ again }}"}
      - {step: end}
  - step: end
"""
    )
    g = layout(pb)
    ys = {n.name: n.y for n in g.nodes}
    assert ys["start"] < ys["work"] < ys["end"]
    (back,) = [e for e in g.edges if e.back]
    assert (back.source, back.target, back.label) == ("work", "start", "{{ again }}")


def test_a_long_when_is_cut_on_the_arc_and_whole_in_its_title() -> None:
    cond = "{{ " + " and ".join(f"workload.flag_{i}" for i in range(12)) + " }}"
    g = layout(
        parse_playbook(HEAD + f'  - step: start\n    next: [{{step: end, when: "{cond}"}}]\n  - step: end\n')
    )
    (edge,) = g.edges
    assert len(edge.label) == LABEL_MAX and edge.label.endswith("…")
    assert edge.title == cond


def test_a_chain_longer_than_the_recursion_limit_is_laid_out_one_per_layer() -> None:
    steps = "".join(f"  - step: {'start' if i == 0 else f's{i}'}\n    next: s{i + 1}\n" for i in range(1199))
    g = layout(parse_playbook(HEAD + steps + "  - step: s1199\n"))
    ys = [n.y for n in g.nodes]
    assert len(ys) == 1200 and ys == sorted(ys) and len(set(ys)) == 1200
    assert len(g.edges) == 1199 and not any(e.back for e in g.edges)
