"""One origin per user server: the names the default deployment serves, and the checks on them.

Every user controls the code of their own server, so a page it serves is the user's page. On
the hub's own origin such a page could act as whoever opens it (read `/hub/token`'s XSRF
token, mint an API token for them, stop servers). On its own host name
(`alice.hub.example.org`, JupyterHub's `subdomain_host`) the browser keeps it apart from the
hub (`hub.example.org`) and from every other user. Pure functions; `jupyterhub_config.py`
applies them.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlparse

from ..environment import BY_NAME

DEFAULT_DOMAIN = BY_NAME["CUDASPAWNER_DOMAIN"].default
# The label OpenSSL-based clients (Python, curl, the hub's services) need under a wildcard:
# they match `*.name` only when `name` has at least two labels, so `*.localhost` would
# work in a browser but in none of them; `*.hub.localhost` works everywhere.
PROBE_LABEL = "cudaspawner-probe"

SAME_ORIGIN_WARNING = (
    "user servers share the hub's origin (CUDASPAWNER_USER_SUBDOMAINS=off): a page served "
    "by any user's server, opened by another logged-in user or an admin, can act as them "
    "on the hub (mint API tokens, start and stop their servers). Serve each server on its "
    "own host name instead: a wildcard DNS record and certificate for *.{domain}, see "
    "docs/setup.md."
)


class OriginProblem(ValueError):
    """The public names cannot give each server its own origin; `str(e)` says what to do."""


def check_domain(domain: str) -> str:
    """The hub's public DNS name, lower case; OriginProblem for an address or a one-label
    name (a wildcard certificate cannot cover the users' names under it)."""
    name = domain.strip().rstrip(".").lower()
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        pass
    else:
        raise OriginProblem(
            f"CUDASPAWNER_DOMAIN={domain!r} is an address; user servers need host names under "
            "a DNS name (alice.<name>). Use a name such as hub.example.org, or hub.localhost "
            "on a single machine."
        )
    labels = name.split(".")
    if len(labels) < 2 or not all(labels):
        raise OriginProblem(
            f"CUDASPAWNER_DOMAIN={domain!r} needs at least two labels (such as hub.example.org "
            "or hub.localhost): certificates for *.<name> are not accepted for a one-label name."
        )
    return name


def subdomain_host(bind_url: str, domain: str) -> str:
    """JupyterHub's `subdomain_host`: the bind URL's scheme and port on the public name."""
    parsed = urlparse(bind_url)
    scheme = parsed.scheme or "https"
    default_port = 443 if scheme == "https" else 80
    port = parsed.port or default_port
    return f"{scheme}://{domain}" + ("" if port == default_port else f":{port}")


def certificate_names(domain: str) -> list[str]:
    """The DNS names the hub's certificate must hold: the hub's name and every server's."""
    return [domain, f"*.{domain}"]


def certificate_problem(pem: bytes, domain: str) -> str | None:
    """None when a site's own certificate serves the hub and its users' servers, else the
    sentence to stop the hub with."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(pem)
        names = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value.get_values_for_type(x509.DNSName)
    except (ValueError, x509.ExtensionNotFound):
        names = []
    missing = [
        name
        for name in (domain, f"{PROBE_LABEL}.{domain}")
        if not any(_matches(pattern.lower(), name) for pattern in names)
    ]
    if not missing:
        return None
    return (
        f"The certificate in CUDASPAWNER_SSL_CERT does not cover {domain} and *.{domain} "
        f"(it names {', '.join(names) or 'no DNS name'}): each user's server is served on its "
        f"own name under {domain}, so the certificate needs both. Get one for both names, or "
        "set CUDASPAWNER_DOMAIN to the name it was made for."
    )


def _matches(pattern: str, name: str) -> bool:
    """RFC 6125 matching as TLS clients do it: exact, or `*.rest` for one more label."""
    if pattern == name:
        return True
    if not pattern.startswith("*."):
        return False
    head, _, rest = name.partition(".")
    return bool(head) and rest == pattern[2:] and rest.count(".") >= 1
