"""The security headers every page of the hub and of its services sends: one list, one place.

HTTPS for a year (HSTS), no framing by anyone (click-jacking), no plugins, no base-URL
tricks, no content-type guessing, and no full URL leaked to other sites in `Referer`.
"""

from __future__ import annotations

from collections.abc import Mapping

HEADERS: Mapping[str, str] = {
    "Strict-Transport-Security": "max-age=31536000",
    "Content-Security-Policy": "frame-ancestors 'none'; object-src 'none'; base-uri 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def set_security_headers(handler) -> None:
    """Set HEADERS on a tornado handler's response (call from `set_default_headers`)."""
    for name, value in HEADERS.items():
        handler.set_header(name, value)
