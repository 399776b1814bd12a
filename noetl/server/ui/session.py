"""The UI's session and its protection against cross-site requests (pure functions, no I/O).

The browser proves once that it holds the client token (``NOETL_API_TOKEN``, the one the API
takes): the login form posts it, and the answer sets a cookie whose value is an HMAC of that token,
never the token itself, so the cookie is worthless against the API and dies when the token is
rotated. The cookie (a random nonce and its MAC) is HttpOnly (no script reads it) and
SameSite=Strict (no other site's page sends it). Every state-changing request must also come from
a page of this server (its Origin, or else its Referer, names this host), and, but for the login
form itself, carry the CSRF token printed in the session's pages (a MAC of its nonce).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from noetl.settings import Settings

COOKIE = "noetl_session"
# Methods that change nothing: every other one is checked for its origin and CSRF token.
SAFE_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Keys:
    """What the UI derives its cookie and CSRF token from; ``required`` is False under NOETL_AUTH=none."""

    secret: bytes
    required: bool

    @classmethod
    def of(cls, settings: Settings) -> Keys:
        required = settings.auth != "none"
        # Without auth there is no token to derive from; a secret of this process still lets the
        # CSRF token refuse forms made elsewhere. A token that is unset matches nothing (fail closed).
        token = settings.api_token if required else None
        secret = token.encode() if token else secrets.token_bytes(32)
        return cls(secret=secret, required=required)

    def _mac(self, purpose: str) -> str:
        return hmac.new(self.secret, f"noetl-ui:{purpose}".encode(), hashlib.sha256).hexdigest()

    def new_session(self) -> str:
        """A cookie value for a browser that just logged in: a random nonce and its MAC."""
        nonce = secrets.token_urlsafe(16)
        return f"{nonce}.{self._mac('session:' + nonce)}"

    def nonce(self, cookie: str | None) -> str | None:
        """The nonce of a valid session cookie; None when it is missing or forged. Without auth
        every browser shares the empty nonce."""
        if not self.required:
            return ""
        if not cookie or cookie.count(".") != 1:
            return None
        nonce, mac = cookie.split(".")
        return nonce if hmac.compare_digest(mac.encode(), self._mac("session:" + nonce).encode()) else None

    def csrf(self, nonce: str) -> str:
        """The token the session's forms carry: bound to its nonce, so another session's is refused."""
        return self._mac("csrf:" + nonce)

    def csrf_ok(self, nonce: str | None, given: str | None) -> bool:
        if nonce is None or not given:
            return False
        return hmac.compare_digest(given.encode(), self.csrf(nonce).encode())

    def token_matches(self, given: str, token: str | None) -> bool:
        """Whether ``given`` (the login form's field) is the client token ``token``."""
        return token is not None and hmac.compare_digest(given.encode(), token.encode())


def same_origin(host: str | None, origin: str | None, referer: str | None) -> bool:
    """Whether a request came from a page of this server: its Origin (else its Referer) names
    ``host``, the Host header it was sent to. Neither header: refused (fail closed)."""
    if not host:
        return False
    source = origin if origin and origin != "null" else referer
    if not source:
        return False
    return urlsplit(source).netloc.lower() == host.lower()


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of this server only (never ``//host`` or a URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
