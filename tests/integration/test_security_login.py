"""Issue 12, findings 1, 2, 5 and 6, against the default deployment (HTTPS, native sign-up,
internal TLS): user names, the approval page, XSRF on approval, cookie and header flags,
the per-address login delay and the public certificate."""

from __future__ import annotations

import html
import socket
import sqlite3
import ssl
import subprocess
from html.parser import HTMLParser
from urllib.parse import urlparse

import bcrypt
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from spawner.accounts.usernames import RULE
from tests.hubtools import VENV_BIN, Browser
from tests.integration.test_security import LOCKOUT, admin_password, approve, logged_in

pytestmark = [pytest.mark.docker, pytest.mark.hub]

HOSTILE = [
    "x\tonmouseover=alert(document.cookie)",
    "x\nadmin",
    "<img src=x onerror=alert(1)>",
    'a"b',
    "a" * 59,  # signed up fine before, then failed every spawn on its certificate
]


@pytest.fixture
def secure_hub(hub_factory):
    return hub_factory(LOCKOUT, secure=True)


def as_admin(hub) -> Browser:
    admin = Browser(hub)
    assert logged_in(admin.login("admin", admin_password(hub)))
    return admin


def try_signup(hub, user: str, password: str = "long-enough-password"):
    b = Browser(hub)
    b.get("hub/signup")
    return b.session.post(
        hub.url + "hub/signup",
        data={
            "username": user,
            "signup_password": password,
            "signup_password_confirmation": password,
            "_xsrf": b.xsrf,
        },
        timeout=30,
    )


def page_text(r) -> str:
    return html.unescape(r.text)


def signups(hub) -> list[str]:
    with sqlite3.connect(hub.data_dir / "jupyterhub.sqlite") as db:
        return [row[0] for row in db.execute("SELECT username FROM users_info")]


def test_hostile_names_are_refused_everywhere_with_a_sentence_saying_what_is_allowed(secure_hub):
    hub = secure_hub
    admin = as_admin(hub)
    for name in HOSTILE:
        r = try_signup(hub, name)
        assert r.status_code == 400, (name, r.status_code)
        assert RULE in page_text(r) or "at most 32" in page_text(r), (name, r.text[:2000])
        # The admin page's "Add users" (the REST API behind it) says the same.
        r = admin.post("hub/api/users", json={"usernames": [name]})
        assert r.status_code == 400, (name, r.text)
        assert RULE in r.json()["message"] or "at most 32" in r.json()["message"]
        # And the login form names the rule instead of a bare "invalid".
        r = Browser(hub).login(name, "whatever-password")
        assert not logged_in(r)
        assert RULE in page_text(r) or "at most 32" in page_text(r)
    assert signups(hub) == ["admin"]
    names = {u["name"] for u in hub.api("GET", "users").json()}
    assert names == {"admin"}

    # A name inside the policy still signs up, and the admin API creates one.
    assert try_signup(hub, "jean-luc.picard").status_code == 200
    r = admin.post("hub/api/users", json={"usernames": ["data_42"]})
    assert r.status_code == 201, r.text


class Attributes(HTMLParser):
    """Every (tag, attribute, value) of a page, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        self.found.extend((tag, k, v) for k, v in attrs)


def test_approval_page_quotes_and_escapes_names_signed_up_before_the_policy(secure_hub):
    hub = secure_hub
    # Accounts that got in before the policy existed: put them straight into the table.
    with sqlite3.connect(hub.data_dir / "jupyterhub.sqlite") as db:
        for name in HOSTILE[:4]:
            db.execute(
                "INSERT INTO users_info (username, password, is_authorized, has_2fa)"
                " VALUES (?, ?, 0, 0)",
                (name, bcrypt.hashpw(b"long-enough-password", bcrypt.gensalt(4))),
            )
    admin = as_admin(hub)
    r = admin.get("hub/authorize")
    assert r.status_code == 200
    parser = Attributes()
    parser.feed(r.text)
    handlers = [(t, k, v) for t, k, v in parser.found if k.startswith("on")]
    assert not handlers, handlers
    assert "<img src=x" not in r.text and "id=x\t" not in r.text
    for name in HOSTILE[:4]:
        # Shown as text, marked as breaking the policy, and offered no Authorize button.
        assert ("id", f"user-{name}") in {(k, v) for _, k, v in parser.found}
        assert name in page_text(r)
    assert page_text(r).count("A user name cannot contain") == 4
    assert r.text.count('value="authorize"') == 0
    # Authorizing one anyway, by hand-made POST, is refused with the reason.
    r = admin.post(f"hub/authorize/{HOSTILE[0]}", data={"action": "authorize"})
    assert r.status_code == 400 and "cannot contain a tab" in page_text(r)

    # The admin CLI finds the same four in the hub's own database.
    done = subprocess.run(
        [
            str(VENV_BIN / "cudaspawner-gpus"),
            "users",
            "--db",
            str(hub.data_dir / "jupyterhub.sqlite"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "4 of 5 account names break the policy" in done.stdout
    assert all(repr(name) in done.stdout for name in HOSTILE[:4])


def test_approval_and_discard_change_nothing_by_get_or_without_xsrf(secure_hub):
    hub = secure_hub
    admin = as_admin(hub)
    for name in ["nadia", "oscar"]:
        assert try_signup(hub, name, f"{name}-long-password").status_code == 200

    # A link (GET), as a page on another site could make the admin's browser open.
    for path in ["hub/authorize/nadia", "hub/discard/oscar"]:
        r = admin.get(path, allow_redirects=False)
        assert r.status_code == 405, (path, r.status_code)
    # A POST without the _xsrf token, as a form on another site would send.
    for path, data in [
        ("hub/authorize/nadia", {"action": "authorize"}),
        ("hub/discard/oscar", {}),
    ]:
        r = admin.session.post(hub.url + path, data=data, allow_redirects=False, timeout=30)
        assert r.status_code == 403, (path, r.status_code)
    assert not logged_in(Browser(hub).login("nadia", "nadia-long-password"))
    assert sorted(signups(hub)) == ["admin", "nadia", "oscar"]

    # The page's own forms work.
    approve(admin, "nadia")
    assert logged_in(Browser(hub).login("nadia", "nadia-long-password"))
    admin.get("hub/authorize")
    r = admin.session.post(hub.url + "hub/discard/oscar", data={"_xsrf": admin.xsrf}, timeout=30)
    assert r.status_code == 200 and sorted(signups(hub)) == ["admin", "nadia"]
    # The page offers them as forms that post back with the token, never as links.
    page = admin.get("hub/authorize").text
    assert 'method="post"' in page and 'name="_xsrf"' in page
    assert 'href="/hub/authorize/' not in page and 'href="/hub/discard/' not in page


def cookie_headers(r) -> dict[str, str]:
    return {h.split("=", 1)[0]: h for h in r.raw.headers.getlist("Set-Cookie")}


def test_cookies_are_secure_and_same_site_and_pages_carry_hsts_and_csp(secure_hub):
    hub = secure_hub
    b = Browser(hub)
    first = b.get("hub/login")
    xsrf_cookie = cookie_headers(first)["_xsrf"]
    assert "Secure" in xsrf_cookie and "SameSite=Lax" in xsrf_cookie, xsrf_cookie

    r = b.login("admin", admin_password(hub))
    assert logged_in(r)
    session = cookie_headers(r)["jupyterhub-session-id"]
    for flag in ["Secure", "HttpOnly", "SameSite=Lax"]:
        assert flag in session, session
    # The login cookie is host-only and `__Host-`: a user's server, on its own name under
    # the hub's, can neither receive it nor set one in its place.
    hub_cookie = cookie_headers(r)["__Host-jupyterhub-hub-login"]
    for flag in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"]:
        assert flag in hub_cookie, hub_cookie
    assert "domain=" not in hub_cookie.lower(), hub_cookie

    for path in ["hub/login", "hub/home", "hub/authorize", "hub/signup"]:
        page = b.get(path)
        assert page.status_code == 200, path
        hsts = page.headers.get("Strict-Transport-Security", "")
        assert hsts.startswith("max-age=") and int(hsts.split("=")[1].split(";")[0]) >= 86400 * 180
        csp = page.headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp, (path, csp)


def test_failed_logins_slow_one_address_and_never_lock_the_user_out_from_another(secure_hub):
    hub = secure_hub
    # The attacker at 127.0.0.1 guesses the admin's password three times.
    attacker = Browser(hub)
    for _ in range(3):
        assert not logged_in(attacker.login("admin", "not-the-password"))
    r = attacker.login("admin", "not-the-password")
    assert not logged_in(r) and "try again in" in r.text
    # Headers claiming another address change nothing for the attacker.
    spoof = {"X-Forwarded-For": "198.51.100.9", "X-Real-Ip": "198.51.100.9"}
    attacker.session.headers.update(spoof)
    r = attacker.login("admin", admin_password(hub))
    assert not logged_in(r) and "try again in" in r.text

    # The admin, from another address, logs in at once.
    admin = Browser(hub, source_address="127.0.0.2")
    assert logged_in(admin.login("admin", admin_password(hub)))


def served_certificate(hub) -> x509.Certificate:
    port = urlparse(hub.url).port
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    return x509.load_pem_x509_certificate(pem.encode())


def test_the_public_certificate_is_no_ca_serves_servers_only_and_names_the_given_names(
    hub_factory,
):
    hub = hub_factory(
        secure=True, env={"CUDASPAWNER_PUBLIC_NAMES": "hub.example.org,10.1.2.3"}, start=False
    )
    # A certificate made by an older cudaspawner: a CA for two names.
    old_key, old_cert = old_ca_certificate()
    (hub.data_dir / "hub-key.pem").write_bytes(old_key)
    (hub.data_dir / "hub-cert.pem").write_bytes(old_cert)
    hub.start()

    cert = served_certificate(hub)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign is False and usage.crl_sign is False
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {
        "hub.localhost",  # the hub's public name and every user server's under it
        "*.hub.localhost",
        "localhost",
        socket.getfqdn().lower(),
        "hub.example.org",
    }
    assert {str(i) for i in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "10.1.2.3"}
    # The file the hub serves is the one clients are told to trust, and it verifies.
    on_disk = x509.load_pem_x509_certificate((hub.data_dir / "hub-cert.pem").read_bytes())
    assert cert == on_disk
    assert Browser(hub).get("hub/login").status_code == 200


def old_ca_certificate() -> tuple[bytes, bytes]:
    """What ensure_self_signed_cert made before this fix: CA:TRUE, no usage limits."""
    import datetime

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)
