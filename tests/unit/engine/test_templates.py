"""Templates: the sandbox, NoETL's context rules, native values and text read back."""

from __future__ import annotations

from typing import Any

import pytest

from noetl.engine.templates import TemplateError, check, is_true, make_scope, plain_scope, read_back, render


def scope(**extra: Any) -> dict[str, Any]:
    return make_scope(
        execution_id="exec-1",
        workload={"n": 100, "city": "Paris", "zip": "02134", "shadow": "workload"},
        ctx={"k": "from ctx", "shadow": "ctx"},
        results={"a": {"x": 5, "rows": [1, 2]}, "l": [1, 2, 3], "s": "text", "h": {"data": {"v": 1}}},
        not_run=["b", "a", "l", "s", "h"],
        extra=extra,
    )


@pytest.mark.parametrize(
    ("template", "value"),
    [
        ("{{ n }}", 100),  # one expression: the native value
        ("{{ workload.n }}", 100),
        ("{{ ctx.k }}", "from ctx"),
        ("{{ k }}", "from ctx"),  # context writes are top-level names too, as in NoETL
        ("{{ workload.k }}", "from ctx"),
        ("{{ shadow }}", "ctx"),  # a context write wins over the workload key
        ("{{ a }}", {"x": 5, "rows": [1, 2]}),  # a dict stays a dict
        ("{{ a.x }}", 5),
        ("{{ a.data.x }}", 5),  # <step>.data is the result too
        ("{{ a.data }}", {"x": 5, "rows": [1, 2]}),
        ("{{ h.data }}", {"v": 1}),  # ...unless the result has its own `data`
        ("{{ a.result.x }}", 5),  # NoETL's older name for the whole result
        ("{{ l.result }}", [1, 2, 3]),
        ("{{ l }}", [1, 2, 3]),
        ("{{ l.data[1] }}", 2),
        ("{{ s }}", "text"),
        ("{{ zip }}", "02134"),  # a native string is not read back as a number
        ("{{ execution_id }}", "exec-1"),
        ("{{ job.uuid }}", "exec-1"),
        ("{{ b.x if b else a.x }}", 5),  # a step that did not run is falsy
        ("{{ b is defined }}", False),
        ("{{ a.rows | length }}", 2),
        ("  {{ n + 1 }}  ", 101),
        ("{{ none_here | default('dflt') }}", "dflt"),
        ("{{ {'k': n} }}", {"k": 100}),
        ("{{ a | tojson }}", '{"rows": [1, 2], "x": 5}'),
        ("{{ 'abc' | b64encode }}", "YWJj"),
    ],
)
def test_render_one_expression_gives_the_native_value(template: str, value: Any) -> None:
    assert render(template, scope(), "w") == value


@pytest.mark.parametrize(
    ("template", "value"),
    [
        ("n={{ n }}", "n=100"),  # text stays text
        ("{{ n }}{{ n }}", 100100),  # text that spells a number is read back as one
        ("[{{ a | tojson }}]", [{"x": 5, "rows": [1, 2]}]),  # ...JSON as JSON
        ("{% if n > 1 %}true{% else %}false{% endif %}", True),
        ("{{ n > 1 }}{{ '' }}", True),  # Jinja prints True; read back as a boolean
        ("{{ a }}{{ '' }}", {"x": 5, "rows": [1, 2]}),  # Jinja prints a dict Python's way; read back
        ('"{{ city }}"', '"Paris"'),  # a quoted string stays the text it was
        ("{{ city }}-{{ zip }}", "Paris-02134"),
        ("no markup 123", "no markup 123"),
        ("123", "123"),  # a plain string is never read back
    ],
)
def test_render_text_is_read_back_where_it_parses(template: str, value: Any) -> None:
    assert render(template, scope(), "w") == value


def test_render_is_recursive_and_keeps_other_values() -> None:
    value = {"a": ["{{ n }}", {"b": "{{ a.x }}"}], "c": 1.5, "d": None, "e": True}
    assert render(value, scope(), "input") == {"a": [100, {"b": 5}], "c": 1.5, "d": None, "e": True}


def test_extra_names_win() -> None:
    assert render("{{ n }}", scope(n=7), "w") == 7
    assert render("{{ iter.item }}", scope(iter={"item": 3}), "w") == 3


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ nope }}", "input.k: 'nope' is undefined"),
        ("x {{ nope }}", "input.k: 'nope' is undefined"),
        ("{{ b }}", "input.k: step 'b' did not run"),
        ("{{ b.x }}", "input.k: step 'b' did not run"),
        ("{{ a.nope.deeper }}", "input.k: 'dict object' has no attribute 'nope'"),
        ("{{ 1 / 0 }}", "input.k: ZeroDivisionError: division by zero"),
        ("{{ n", "input.k: template syntax error (line 1): unexpected end of template"),
    ],
)
def test_render_errors_are_one_line_naming_where(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        render({"k": template}, scope(), "input")
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ a.__class__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ lipsum.__globals__['os'].popen('id').read() }}",
        "{{ self._TemplateReference__context }}",
        "{{ joiner.__init__.__globals__ }}",
        "{{ a.rows.__self__ }}",
        "{{ (a|attr('__class__')) }}",
        "{% for c in ''.__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    ],
)
def test_the_sandbox_refuses_python_internals(template: str) -> None:
    with pytest.raises(TemplateError, match=r"unsafe|undefined|has no attribute"):
        render(template, scope(), "w")


@pytest.mark.parametrize(
    "template",
    [
        "{{ a.rows.append(3) }}",  # a result cannot be changed by a template
        "{{ l.append(4) }}",
        "{{ workload.update({'n': 1}) }}",
        "{{ ctx.pop('k') }}",
    ],
)
def test_templates_cannot_mutate_what_they_see(template: str) -> None:
    before = scope()
    with pytest.raises(TemplateError, match="unsafe"):
        render(template, before, "w")
    assert before["a"]["rows"] == [1, 2] and before["l"] == [1, 2, 3] and before["ctx"]["k"] == "from ctx"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ 'x' * 10000000 }}", "a product longer than 1000000 items"),
        ("{{ [0] * 2000000 }}", "a product longer than 1000000 items"),
        ("{{ 10 ** 100000 }}", "a power larger than 4096 bits"),
        ("{% for i in range(10000000) %}{% endfor %}", "Range too big"),
    ],
)
def test_a_template_cannot_eat_the_servers_memory(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        render(template, scope(), "w")
    assert (
        render("{{ 'ab' * 3 }}", scope(), "w") == "ababab" and render("{{ 2 ** 10 }}", scope(), "w") == 1024
    )


@pytest.mark.parametrize(
    ("when", "value"),
    [
        ("{{ n > 50 }}", True),
        ("{{ n > 500 }}", False),
        ("n > 50", True),  # a bare expression
        (True, True),
        (False, False),
        ("{{ b }}", False),  # a step that did not run is false...
        ("{{ not b }}", True),
        ("{{ a }}", True),
        ("{{ a.x == 5 and city == 'Paris' }}", True),
        ("{{ 'false' }}", False),  # text that says false is false
        ("{{ n }} > 1", True),  # "100 > 1" as text is not false
        ("{{ event.name == 'call.done' }}", True),
        ("{{ output.data.x == 5 }}", True),
    ],
)
def test_is_true(when: Any, value: bool) -> None:
    extra = {"event": {"name": "call.done"}, "output": {"status": "ok", "data": {"x": 5}}}
    assert is_true(when, scope(**extra), "next[0].when") is value


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ("{{ staus == 'ok' }}", "next[1].when: 'staus' is undefined"),  # a typo is never silently false
        ("{{ nope }}", "next[1].when: 'nope' is undefined"),
        ("{{ b.x > 1 }}", "next[1].when: step 'b' did not run"),
        ("{{ a.x > 'text' }}", "next[1].when: TypeError: '>' not supported"),
        ("{{ ''.__class__ }}", "next[1].when: access to attribute '__class__' of 'str' object is unsafe"),
    ],
)
def test_a_when_that_cannot_be_evaluated_raises(when: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        is_true(when, scope(), "next[1].when")
    assert str(info.value).startswith(message)


def test_check_parses_without_rendering() -> None:
    check({"a": ["{{ nope.nothing }}", "{% if x %}y{% endif %}"], "b": 1}, "input")  # undefined is fine
    with pytest.raises(TemplateError, match=r"^input.a\[1\]: template syntax error"):
        check({"a": ["ok", "{% if %}"]}, "input")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", 42),
        ("-1.5", -1.5),
        ("true", True),
        ("False", False),
        ("null", None),
        ("None", None),
        ('{"a": 1}', {"a": 1}),
        ("[1, 'two']", [1, "two"]),
        ('"quoted"', '"quoted"'),
        ("hello", "hello"),
        ("", ""),
        ("{not json", "{not json"),
        ("(1, 2)", "(1, 2)"),  # a tuple is not something JSON has: the text stays
    ],
)
def test_read_back(text: str, value: Any) -> None:
    assert read_back(text) == value


def test_plain_scope_is_what_templates_see_as_json() -> None:
    seen = plain_scope(
        execution_id="e", workload={"n": 1}, ctx={"m": 2}, results={"a": {"x": 1}}, not_run=["b"]
    )
    assert seen == {
        "n": 1,
        "m": 2,
        "a": {"x": 1},
        "workload": {"n": 1, "m": 2},
        "ctx": {"n": 1, "m": 2},
        "execution_id": "e",
        "job": {"uuid": "e", "execution_id": "e", "id": "e"},
    }


def test_a_key_wins_over_a_dicts_method() -> None:
    seen = make_scope(
        execution_id="e",
        workload={"items": [1, 2], "keys": "k"},
        ctx={},
        results={"fetch": {"data": {"items": [3], "values": 4}}},
    )
    # plain Jinja would give dict.items here: a common trap with JSON answers and workloads
    assert render("{{ workload.items }}", seen, "w") == [1, 2]
    assert render("{{ fetch.data.items | length }}", seen, "w") == 1
    assert render("{{ fetch.data.values }}", seen, "w") == 4
    assert render("{{ workload.keys }}", seen, "w") == "k"
    assert render("{{ fetch.data.get('items') }}", seen, "w") == [
        3
    ]  # methods still work when no key hides them


def test_a_method_is_not_a_value() -> None:
    with pytest.raises(TemplateError, match=r"^input.x: the value is a builtin_function_or_method, not data"):
        render({"x": "{{ workload.values }}"}, scope(), "input")
