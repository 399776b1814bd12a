"""The session cookie, the CSRF token, the origin check and the login's next page (pure)."""

from __future__ import annotations

from noetl.server.ui.session import Keys, safe_next, same_origin
from noetl.settings import load_settings
from tests.auth import CLIENT_TOKEN, TOKEN_ENV


def keys(**env: str) -> Keys:
    return Keys.of(load_settings({"POSTGRES_HOST": "db", **TOKEN_ENV, **env}))


def test_a_session_is_a_nonce_and_its_mac_and_never_the_token() -> None:
    k = keys()
    cookie = k.new_session()
    assert CLIENT_TOKEN not in cookie
    nonce = k.nonce(cookie)
    assert nonce is not None and cookie.startswith(nonce + ".")
    assert k.new_session() != cookie  # a new nonce each login
    for forged in (None, "", "abc", "abc.def", nonce + ".0" * 1, cookie + "x", "." + cookie.split(".")[1]):
        assert k.nonce(forged) is None, forged
    # Another token (rotated) invalidates every session made with the old one.
    assert keys(NOETL_API_TOKEN="another-token-0123456789").nonce(cookie) is None


def test_the_csrf_token_belongs_to_one_session() -> None:
    k = keys()
    mine, theirs = k.nonce(k.new_session()), k.nonce(k.new_session())
    assert mine is not None and theirs is not None
    assert k.csrf_ok(mine, k.csrf(mine))
    assert not k.csrf_ok(mine, k.csrf(theirs))
    assert not k.csrf_ok(mine, "")
    assert not k.csrf_ok(None, k.csrf(mine))


def test_the_login_compares_the_token() -> None:
    k = keys()
    assert k.token_matches(CLIENT_TOKEN, CLIENT_TOKEN)
    assert not k.token_matches(CLIENT_TOKEN[:-1], CLIENT_TOKEN)
    assert not k.token_matches("", None)  # no token configured: nothing matches


def test_without_auth_every_browser_shares_the_empty_nonce() -> None:
    k = keys(NOETL_AUTH="none", NOETL_HOST="127.0.0.1")
    assert k.nonce(None) == ""
    assert k.csrf_ok("", k.csrf(""))


def test_same_origin_needs_this_host_in_origin_or_referer() -> None:
    assert same_origin("127.0.0.1:8082", "http://127.0.0.1:8082", None)
    assert same_origin("ui.example:443", "https://UI.example:443", None)
    assert same_origin("127.0.0.1:8082", None, "http://127.0.0.1:8082/ui/catalog/x")
    assert same_origin("127.0.0.1:8082", "null", "http://127.0.0.1:8082/ui/catalog/x")
    assert not same_origin("127.0.0.1:8082", "http://evil.example", "http://127.0.0.1:8082/")
    assert not same_origin("127.0.0.1:8082", "http://127.0.0.1:9999", None)
    assert not same_origin("127.0.0.1:8082", None, None)
    assert not same_origin(None, "http://127.0.0.1:8082", None)


def test_the_next_page_stays_on_this_server() -> None:
    assert safe_next("/ui/executions?status=FAILED") == "/ui/executions?status=FAILED"
    for outside in (None, "", "http://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"):
        assert safe_next(outside) == "/", outside
