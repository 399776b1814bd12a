"""The YAML highlighter: spans around keys, strings, literals, templates and comments, and every
character of the playbook back as text, whatever it holds."""

from __future__ import annotations

import html
import re

from hypothesis import given
from hypothesis import strategies as st

from noetl.server.ui.highlight import highlight, highlight_line

TAG = re.compile(r"<[^>]*>")


def text_of(markup: str) -> str:
    """What a browser shows: the tags dropped, the entities decoded."""
    return html.unescape(TAG.sub("", markup))


def test_each_kind_gets_its_span() -> None:
    out = str(highlight_line('  command: "echo {{ city }}"  # say it'))
    assert '<span class="y-key">command</span>' in out
    assert '<span class="y-str">&#34;echo <span class="y-tpl">{{ city }}</span>&#34;</span>' in out
    assert '<span class="y-com"># say it</span>' in out
    assert '<span class="y-lit">true</span>' in str(highlight_line("enabled: true"))
    assert '<span class="y-lit">0.8</span>' in str(highlight_line("pause: 0.8"))
    assert '<span class="y-key">step</span>' in str(highlight_line("  - step: start"))


def test_markup_in_a_playbook_is_escaped() -> None:
    out = str(highlight('description: "<script>alert(1)</script>"\nname: <img src=x onerror=alert(2)>'))
    assert "<script>" not in out and "<img" not in out
    assert "&lt;script&gt;" in out and "&lt;img src=x" in out


def test_a_hash_in_a_string_is_no_comment() -> None:
    out = str(highlight_line('url: "http://x/#frag"'))
    assert "y-com" not in out


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]) | st.sampled_from(["\n", "\t"])))
def test_the_text_comes_back_unchanged_and_only_spans_are_added(text: str) -> None:
    out = str(highlight(text))
    assert text_of(out) == "\n".join(text.splitlines())
    assert {tag.split()[0] for tag in TAG.findall(out)} <= {"<span", "</span>"}
