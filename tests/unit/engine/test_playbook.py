"""Parsing and registration-time validation of playbooks: every refusal is one line naming the
step and the key."""

from __future__ import annotations

import textwrap

import pytest

from noetl.engine.playbook import Arc, PlaybookError, parse_playbook

HEAD = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: demo
  path: tests/demo
  description: a demo
workload:
  n: 1
workbook:
  - name: greet
    tool: {kind: python, code: "result = {'hi': who}"}
    assert: {expects: [who], returns: [hi]}
workflow:
"""


def pb(steps: str, head: str = HEAD):
    return parse_playbook(head + textwrap.indent(textwrap.dedent(steps), "  "))


def refused(steps: str, head: str = HEAD) -> str:
    with pytest.raises(PlaybookError) as info:
        pb(steps, head)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_full_playbook_parses_into_steps_in_file_order() -> None:
    book = pb(
        """
        - step: start
          desc: first
          tool: {kind: python, code: "result = n", input: {n: "{{ n }}"}}
          input: {m: 2}
          set: {ctx.x: "{{ start }}"}
          next:
            spec: {mode: inclusive}
            arcs: [{step: b, when: "{{ x > 0 }}", set: {ctx.y: 1}}, {step: end}]
        - step: b
          tool:
            - {name: one, kind: http, url: "http://h/{{ n }}"}
            - two: {kind: noop}
            - {kind: noop}
            - {kind: workbook, name: greet}
            - hello: {kind: workbook, name: greet}
        - step: end
        """
    )
    assert (book.api_version, book.name, book.path, book.description) == (
        "noetl.io/v2",
        "demo",
        "tests/demo",
        "a demo",
    )
    assert book.workload == {"n": 1}
    assert list(book.steps) == ["start", "b", "end"]
    start = book.steps["start"]
    assert start.desc == "first" and start.mode == "inclusive" and start.input == {"m": 2}
    assert start.set == {"ctx.x": "{{ start }}"}
    assert start.arcs == (
        Arc(step="b", when="{{ x > 0 }}", set={"ctx.y": 1}, label="next.arcs[0]"),
        Arc(step="end", label="next.arcs[1]"),
    )
    assert [(t.name, t.kind) for t in start.tasks] == [(None, "python")] and not start.task_list
    b = book.steps["b"]
    assert b.task_list and [(t.name, t.kind) for t in b.tasks] == [
        ("one", "http"),
        ("two", "noop"),
        ("task_3", "noop"),
        ("greet", "workbook"),
        ("hello", "workbook"),
    ]
    assert b.tasks[4].spec == {"kind": "workbook", "name": "greet"}
    assert book.steps["end"].tasks == () and book.steps["end"].arcs == ()
    entry = book.workbook["greet"]
    assert entry.expects == ("who",) and entry.returns == ("hi",) and entry.tool["kind"] == "python"


def test_path_defaults_to_the_name_and_v10_is_accepted() -> None:
    head = "apiVersion: noetl.io/v10\nkind: Playbook\nmetadata: {name: only_name}\nworkflow:\n"
    book = pb("- step: start\n", head)
    assert (book.path, book.api_version, book.workload, book.workbook) == (
        "only_name",
        "noetl.io/v10",
        {},
        {},
    )


@pytest.mark.parametrize(
    ("next_yaml", "arcs", "mode"),
    [
        ("next: b", [("b", None)], "exclusive"),
        ("next: [b, c]", [("b", None), ("c", None)], "exclusive"),
        (
            "next: [{step: b, when: '{{ n > 1 }}'}, {step: c}]",
            [("b", "{{ n > 1 }}"), ("c", None)],
            "exclusive",
        ),
        ("next: {arcs: [{step: c}]}", [("c", None)], "exclusive"),
        (
            "next: {spec: {mode: inclusive}, arcs: [b, {step: c, when: true}]}",
            [("b", None), ("c", True)],
            "inclusive",
        ),
    ],
)
def test_every_form_of_next(next_yaml: str, arcs: list[tuple[str, object]], mode: str) -> None:
    book = pb(f"- step: start\n  {next_yaml}\n- step: b\n- step: c\n")
    step = book.steps["start"]
    assert [(a.step, a.when) for a in step.arcs] == arcs
    assert step.mode == mode


def test_the_content_is_kept_as_given() -> None:
    text = HEAD + "  - step: start\n"
    assert parse_playbook(text).content == text


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ("- step: a\n", "workflow: no step named 'start' (the run starts there)"),
        ("- step: start\n- step: start\n", "step 'start': duplicate step name (workflow[1])"),
        (
            "- step: start\n  next: {arcs: [{step: start}, {step: nope}]}\n",
            "step 'start': next.arcs[1].step: no step named 'nope'",
        ),
        ("- step: start\n  next: nope\n", "step 'start': next: no step named 'nope'"),
        ("- step: start\n  next: [start, nope]\n", "step 'start': next[1]: no step named 'nope'"),
        (
            "- step: start\n  next: [{step: nope, when: 'true'}]\n",
            "step 'start': next[0].step: no step named 'nope'",
        ),
        (
            "- step: start\n  tool: {kind: sql}\n",
            "step 'start': tool.kind: unknown tool kind 'sql'; expected one of: ",
        ),
        (
            "- step: start\n  tool: [{name: a, kind: ftp}]\n",
            "step 'start': tool[0].kind: unknown tool kind 'ftp'",
        ),
        (
            "- step: start\n  tool: {kind: playbook}\n",
            "step 'start': tool.path: the catalog path of the playbook to run is required",
        ),
        (
            "- step: start\n  tool: {kind: playbook, path: a/b, version: 0}\n",
            "step 'start': tool.version: expected a version number or 'latest', got 0",
        ),
        (
            "- step: start\n  tool: {kind: playbook, path: a/b, payload: {}}\n",
            "step 'start': tool.payload: unknown key for a playbook tool; expected one of: input,"
            " path, version",
        ),
        (
            "- step: start\n  tool: [{name: a, kind: playbook, path: a/b}]\n",
            "step 'start': tool 'a'.kind: a sub-playbook is a step's tool, not a task of a list",
        ),
        (
            "- step: start\n  tool: {kind: iterator}\n",
            "step 'start': tool.kind: 'iterator' (NoETL's iterator tool; write `loop:` on the step) is not",
        ),
        ("- step: start\n  tool: {kind: tasks}\n", "step 'start': tool.kind: unknown tool kind 'tasks'"),
        ("- step: start\n  tool: {code: x}\n", "step 'start': tool.kind: a tool kind is required"),
        (
            "- step: start\n  input: {a: '{{ x'}\n",
            "step 'start': input.a: template syntax error (line 1): unexpected end of template",
        ),
        (
            "- step: start\n  tool: {kind: shell, command: 'echo {% if %}'}\n",
            "step 'start': tool.command: template syntax error (line 1)",
        ),
        (
            "- step: start\n  tool: [{name: a, kind: shell, cmds: ['ok', '{{ a. }}']}]\n",
            "step 'start': tool 'a'.cmds[1]: template syntax error",
        ),
        (
            "- step: start\n  next: [{step: start, when: '{{ x == }}'}]\n",
            "step 'start': next[0].when: template syntax error",
        ),
        ("- step: start\n  set: {ctx.a: '{{ }}'}\n", "step 'start': set.ctx.a: template syntax error"),
        (
            "- step: start\n  next: {arcs: [{step: start, set: {ctx.a: '{{ 1 +'}}]}\n",
            "step 'start': next.arcs[0].set.ctx.a: template syntax error",
        ),
        (
            "- step: start\n  tool: {kind: workbook, name: nope}\n",
            "step 'start': tool.name: no workbook entry named 'nope' (entries: greet)",
        ),
        (
            "- step: start\n  tool: {kind: workbook}\n",
            "step 'start': tool.name: the workbook entry to run is required",
        ),
        ("- step: start\n  nxt: b\n", "step 'start': nxt: unknown key; expected one of: step, desc"),
        (
            "- step: start\n  next: {spec: {mode: both}, arcs: []}\n",
            "step 'start': next.spec.mode: expected exclusive or inclusive",
        ),
        (
            "- step: start\n  next: {steps: [a]}\n",
            "step 'start': next.steps: unknown key; expected spec and arcs",
        ),
        ("- step: start\n  next: [{step: start, if: x}]\n", "step 'start': next[0].if: unknown key"),
        ("- step: start\n  next: [{when: x}]\n", "step 'start': next[0].step: a step name is required"),
        ("- step: start\n  input: [1]\n", "step 'start': input: expected a mapping, got list"),
        ("- step: start\n  set: {ctx: 1}\n", "step 'start': set: 'ctx' is not a context key"),
        (
            "- step: start\n  loop: {iterator: x}\n",
            "step 'start': loop.in: the list to loop over is required",
        ),
        ("- step: start\n  loop: {in: 3}\n", "step 'start': loop.in: expected a template or a list, got int"),
        ("- step: start\n  loop: {in: [1], over: x}\n", "step 'start': loop.over: unknown key"),
        (
            "- step: start\n  loop: {in: [1], iterator: 'a b'}\n",
            "step 'start': loop.iterator: expected a name made of letters",
        ),
        (
            "- step: start\n  loop: {in: [1], iterator: iter}\n",
            "step 'start': loop.iterator: expected a name",
        ),
        (
            "- step: start\n  loop: {in: [1], spec: {mode: random}}\n",
            "step 'start': loop.spec.mode: expected sequential or parallel, got 'random'",
        ),
        (
            "- step: start\n  loop: {in: [1], spec: {mode: parallel, max_in_flight: 0}}\n",
            "step 'start': loop.spec.max_in_flight: expected a whole number of 1 or more, got 0",
        ),
        ("- step: start\n  loop: {in: '{{ xs '}\n", "step 'start': loop.in: template syntax error"),
        (
            "- step: start\n  tool: [{name: a, kind: noop}, {name: a, kind: noop}]\n",
            "step 'start': tool[1].name: a second task named 'a'",
        ),
        (
            "- step: start\n  tool: [{name: 'a b', kind: noop}]\n",
            "step 'start': tool[0].name: expected a name made of letters",
        ),
        (
            "- step: start\n  tool: []\n",
            "step 'start': tool: expected a mapping with `kind` or a non-empty list",
        ),
        ("- {desc: x}\n", "workflow[0].step: a step name (non-empty string) is required"),
        (
            "- step: start\n  tool: {kind: http, url: x, auth: y}\n",
            "step 'start': tool.auth: unknown key for a http tool; expected one of: args, body, endpoint,",
        ),
        (
            "- step: start\n  tool: [{name: a, kind: shell, cmds: [x], retries: 2}]\n",
            "step 'start': tool[0].retries: unknown key for a shell tool",
        ),
        (
            "- step: start\n  tool: {kind: http, url: x, spec: {policy: {rules: []}}}\n",
            "step 'start': tool.spec.policy.rules: expected a non-empty list of {when, then}",
        ),
        (
            "- step: start\n  tool: {kind: http, url: x, spec: {retry: 3}}\n",
            "step 'start': tool.spec.retry: unknown key; expected policy",
        ),
        (
            "- step: start\n  tool: {kind: http, url: x, spec: {policy: {rules: [{when: true, then:"
            " {do: explode}}]}}}\n",
            "step 'start': tool.spec.policy.rules[0].then.do: expected one of continue, retry, fail,"
            " break, jump",
        ),
        (
            "- step: start\n  tool: {kind: http, url: x, spec: {policy: {rules: [{when: '{{ x ==}}',"
            " then: {}}]}}}\n",
            "step 'start': tool.spec.policy.rules[0].when: template syntax error",
        ),
        (
            "- step: start\n  tool: {kind: http, url: x, spec: {policy: {rules: [{else: {then:"
            " {attempts: 0}}}]}}}\n",
            "step 'start': tool.spec.policy.rules[0].else.then.attempts: expected a whole number from"
            " 1 to 100",
        ),
        (
            "- step: start\n  tool: {kind: http, url: x, spec: {policy: {rules: [{when: true, then:"
            " {do: retry, backoff: linear}}]}}}\n",
            "step 'start': tool.spec.policy.rules[0].then.backoff: expected one of fixed, exponential",
        ),
        (
            "- step: start\n  tool: {kind: http, url: x, spec: {policy: {rules: [{when: true}]}}}\n",
            "step 'start': tool.spec.policy.rules[0]: expected exactly `when` and `then`",
        ),
        (
            "- step: start\n  tool: [{name: a, kind: shell, command: x, spec: {policy: {rules: [{when:"
            " true, then: {do: jump}}]}}}]\n",
            "step 'start': tool[0].spec.policy.rules[0].then.to: `do: jump` needs the name of the task",
        ),
        (
            "- step: start\n  tool: [{name: a, kind: python, code: x, spec: {policy: {rules: [{when:"
            " true, then: {do: jump, to: b}}]}}}]\n",
            "step 'start': tool 'a'.spec: jump to 'b': no task of this list has that name",
        ),
        (
            "- step: start\n  tool: {kind: workbook, name: greet, spec: {policy: {rules: [{else:"
            " {then: {}}}]}}}\n",
            "step 'start': tool.spec: a workbook call has no policy",
        ),
        (
            "- step: start\n  tool: {kind: workbook, name: greet, with: {}}\n",
            "step 'start': tool.with: unknown key",
        ),
    ],
)
def test_registration_refuses_with_one_line_naming_step_and_key(steps: str, message: str) -> None:
    assert refused(steps).startswith(message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [1,\nb: 2\n", "invalid YAML at line 3, column 1: expected ',' or ']'"),
        ("a: 1\n  b: 2\n", "invalid YAML at line 2, column 4: mapping values are not allowed here"),
        ("- 1\n", "the playbook must be a YAML mapping, got list"),
        (
            "apiVersion: noetl.io/v1\nkind: Playbook\n",
            "apiVersion: expected one of noetl.io/v2, noetl.io/v10, got 'noetl.io/v1'",
        ),
        ("apiVersion: noetl.io/v2\nkind: Job\n", "kind: expected 'Playbook', got 'Job'"),
        (
            "apiVersion: noetl.io/v2\nkind: Playbook\nworkflow: []\n",
            "metadata: expected a mapping, got nothing",
        ),
        (
            "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {path: x}\n",
            "metadata.name: a non-empty string is required",
        ),
        (
            "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: x}\nworkflow: []\n",
            "workflow: expected a non-empty list",
        ),
        (
            "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: x}\nworkload: [1]\n"
            "workflow: [{step: start}]\n",
            "workload: expected a mapping, got list",
        ),
        (
            "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: x}\nsteps: []\n",
            "steps: unknown top-level key",
        ),
    ],
)
def test_document_level_refusals(text: str, message: str) -> None:
    with pytest.raises(PlaybookError) as info:
        parse_playbook(text)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("workbook", "message"),
    [
        ("  - name: a\n    tool: {kind: ftp}\n", "workbook 'a': tool.kind: unknown tool kind 'ftp'"),
        (
            "  - name: a\n    tool: {kind: workbook, name: a}\n",
            "workbook 'a': tool.kind: a workbook entry cannot call",
        ),
        (
            "  - name: a\n    tool: {kind: noop}\n  - name: a\n    tool: {kind: noop}\n",
            "workbook 'a': a second entry",
        ),
        ("  - tool: {kind: noop}\n", "workbook[0].name: a non-empty string is required"),
        ("  - name: a\n", "workbook 'a': tool: expected a mapping, got nothing"),
        (
            "  - name: a\n    tool: {kind: noop, input: {x: '{{'}}\n",
            "workbook 'a': tool.input.x: template syntax error",
        ),
        ("  - name: a\n    tool: {kind: noop, x: 1}\n", "workbook 'a': tool.x: unknown key for a noop tool"),
        (
            "  - name: a\n    tool: {kind: noop}\n    assert: {expects: who}\n",
            "workbook 'a': assert.expects: expected a list",
        ),
    ],
)
def test_workbook_refusals(workbook: str, message: str) -> None:
    head = (
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: x}\nworkbook:\n" + workbook + "workflow:\n"
    )
    assert refused("- step: start\n", head).startswith(message)


def test_python_code_templates_are_checked_like_any_other_value() -> None:
    # NoETL renders a tool's whole mapping, code included; a broken template there is refused early.
    assert refused("- step: start\n  tool: {kind: python, code: 'x = \"{{ a\"'}\n").startswith(
        "step 'start': tool.code: template syntax error"
    )


def test_a_duckdb_step_is_refused_with_the_extra_to_install_when_duckdb_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    steps = "- step: start\n  tool: {kind: duckdb, query: select 1}\n"
    parse_playbook(HEAD + steps)  # installed here (make install): accepted
    # The one seam: whether the package can be imported.
    monkeypatch.setattr("noetl.tools.duckdb.installed", lambda: False)
    assert refused(steps) == (
        "step 'start': tool.kind: the duckdb tool needs the duckdb extra: pip install 'noetl[duckdb]'"
    )


def test_loops_policies_and_sub_playbooks_parse_into_their_shapes() -> None:
    pb = parse_playbook(
        HEAD
        + """\
- step: start
  loop: {in: "{{ xs }}", iterator: x, spec: {mode: parallel, max_in_flight: 4}}
  tool:
    kind: http
    url: "http://h/{{ x }}"
    spec: {policy: {rules: [{when: "{{ output.http.status == 503 }}", then: {do: retry, attempts: 5}}]}}
  next: child
- step: child
  tool: {kind: playbook, path: kids/a, version: latest, input: {y: 1}}
"""
    )
    loop = pb.steps["start"].loop
    assert loop is not None
    assert (loop.items, loop.iterator, loop.mode, loop.max_in_flight) == ("{{ xs }}", "x", "parallel", 4)
    assert pb.steps["start"].tasks[0].spec["spec"]["policy"]["rules"][0]["then"]["attempts"] == 5
    assert pb.steps["child"].tasks[0].kind == "playbook"
    assert pb.targets == {"start": ("child",), "child": ()}
    assert pb.reaches["start"] == frozenset({"child"})
