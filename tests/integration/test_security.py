"""Issue 7: the default deployment as shipped (HTTPS, NativeAuthenticator, internal TLS).

Real hub, real proxy, real engine, real TLS: every request below verifies the hub's
certificate against the file the hub generated, as a careful client would.
"""

from __future__ import annotations

import re
import ssl
import stat
from urllib.parse import urlparse

import pytest
import requests

from tests.hubtools import Browser, container_of

pytestmark = [pytest.mark.docker, pytest.mark.hub]

# Three free failures per (user, address), then a wait long enough to be seen by a test.
LOCKOUT = """
c.NativeAuthenticator.allowed_failed_logins = 3
c.NativeAuthenticator.seconds_before_next_try = 3600
c.CUDANativeAuthenticator.login_delay_base = 600
"""


def admin_password(hub) -> str:
    found = re.findall(r"password: (\S+)", hub.log())
    assert found, "the first start prints the generated admin password"
    return found[-1]


def secure_browser(hub) -> Browser:
    return Browser(hub)


def signup(hub, user: str, password: str) -> None:
    b = secure_browser(hub)
    b.get("hub/signup")
    r = b.session.post(
        hub.url + "hub/signup",
        data={
            "username": user,
            "signup_password": password,
            "signup_password_confirmation": password,
            "_xsrf": b.xsrf,
        },
        timeout=30,
    )
    assert r.status_code == 200, r.text[:500]


def approve(admin: Browser, user: str) -> None:
    """Authorize a sign-up as the admin's page does: a POST form carrying _xsrf."""
    admin.get("hub/authorize")
    r = admin.session.post(
        admin.hub.url + f"hub/authorize/{user}",
        data={"action": "authorize", "_xsrf": admin.xsrf},
        timeout=30,
    )
    assert r.status_code == 200 and r.url.endswith("/hub/authorize"), r.text[:500]


def logged_in(r: requests.Response) -> bool:
    return r.status_code == 302 and "/hub/login" not in r.headers.get("Location", "")


@pytest.fixture
def secure_hub(hub_factory):
    return hub_factory(LOCKOUT, secure=True)


def test_https_serves_the_generated_certificate_and_plain_http_logs_nobody_in(secure_hub):
    hub = secure_hub
    cert_file, key_file = hub.data_dir / "hub-cert.pem", hub.data_dir / "hub-key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    for secret in ["proxy-token", "crypt-key", "jupyterhub_cookie_secret"]:
        assert stat.S_IMODE((hub.data_dir / secret).stat().st_mode) == 0o600, secret

    port = urlparse(hub.url).port
    served = ssl.get_server_certificate(("127.0.0.1", port))
    assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(cert_file.read_text())

    admin = secure_browser(hub)
    r = admin.login("admin", admin_password(hub))
    assert logged_in(r), r.text[:300]
    cookies = r.headers.get("Set-Cookie", "")
    assert "jupyterhub-session-id" in cookies and "Secure" in cookies

    # The same login over plain HTTP on the public port: no session, whatever the answer.
    plain = requests.Session()
    try:
        r = plain.post(
            f"http://127.0.0.1:{port}/hub/login",
            data={"username": "admin", "password": admin_password(hub)},
            allow_redirects=False,
            timeout=10,
        )
    except requests.ConnectionError:
        pass  # refused outright
    else:
        assert r.status_code >= 400
        assert "jupyterhub-session-id" not in r.headers.get("Set-Cookie", "")


def test_signup_needs_admin_approval_and_wrong_passwords_slow_that_address(secure_hub):
    hub = secure_hub
    admin = secure_browser(hub)
    assert logged_in(admin.login("admin", admin_password(hub)))

    signup(hub, "nadia", "correct-horse-battery")
    nadia = secure_browser(hub)
    assert not logged_in(nadia.login("nadia", "correct-horse-battery"))
    approve(admin, "nadia")
    assert logged_in(nadia.login("nadia", "correct-horse-battery"))

    signup(hub, "mallory", "mallory-password-1")
    approve(admin, "mallory")
    m = secure_browser(hub)
    for _ in range(3):
        assert not logged_in(m.login("mallory", "wrong-guess-123"))
    # Slowed down: from this address even the right password is refused for now.
    r = m.login("mallory", "mallory-password-1")
    assert not logged_in(r) and "try again in" in r.text


def test_restart_keeps_secrets_certificate_and_sessions(secure_hub):
    hub = secure_hub
    admin = secure_browser(hub)
    assert logged_in(admin.login("admin", admin_password(hub)))
    before = {
        f: (hub.data_dir / f).read_bytes()
        for f in ["proxy-token", "crypt-key", "jupyterhub_cookie_secret", "hub-cert.pem"]
    }
    hub.stop()
    hub.start()
    after = {f: (hub.data_dir / f).read_bytes() for f in before}
    assert after == before
    home = admin.get("hub/home", allow_redirects=False)
    assert home.status_code == 200, home.headers.get("Location")


def test_internal_tls_isolation_and_tokens(secure_hub, docker_client):
    hub = secure_hub
    admin = secure_browser(hub)
    assert logged_in(admin.login("admin", admin_password(hub)))
    users = {}
    for name in ["b12ann", "b12ben"]:
        signup(hub, name, f"{name}-long-password")
        approve(admin, name)
        b = secure_browser(hub)
        assert logged_in(b.login(name, f"{name}-long-password"))
        assert b.spawn(name).status_code in (201, 202)
        users[name] = b
    try:
        for name in users:
            hub.wait_ready(name)
        ann = users["b12ann"]

        # Through the proxy it works, over TLS end to end (the page logs in by OAuth first).
        assert ann.get("user/b12ann/lab").status_code == 200
        assert ann.get("user/b12ann/api/status").status_code == 200

        # Directly to the container: plain HTTP and TLS without the proxy's client
        # certificate are both refused.
        c = container_of(docker_client, "b12ann")
        ip = c.attrs["NetworkSettings"]["Networks"]["cudaspawner-test"]["IPAddress"]
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://{ip}:8888/user/b12ann/api/status", timeout=10)
        with pytest.raises((requests.exceptions.SSLError, requests.ConnectionError)):
            requests.get(f"https://{ip}:8888/user/b12ann/api/status", verify=False, timeout=10)

        # The container's private key is the container user's alone.
        code, out = c.exec_run(["sh", "-c", "stat -c '%a %u' /certs/*.key"])
        assert code == 0 and out.decode().split() == ["600", str(1000)]
        # No Docker socket, no published port, only the dedicated network.
        assert not [m for m in c.attrs["Mounts"] if "docker.sock" in (m.get("Source") or "")]
        assert not c.attrs["HostConfig"]["PortBindings"]
        assert list(c.attrs["NetworkSettings"]["Networks"]) == ["cudaspawner-test"]

        # Ann's cookie and Ann's token never reach Ben's server.
        for path in ["user/b12ben/api/contents", "user/b12ben/api/gpu/v1/status"]:
            r = ann.get(path, allow_redirects=False)
            assert r.status_code in (302, 403), (path, r.status_code)
            if r.status_code == 302:
                assert (
                    "/user/b12ben/" not in r.headers["Location"] or "oauth" in r.headers["Location"]
                )
                followed = ann.get(path)
                assert followed.status_code == 403 or "b12ben" not in followed.url

        r = ann.post("hub/api/users/b12ann/tokens", json={"note": "script"})
        assert r.status_code == 201, r.text
        token = r.json()["token"]
        auth = {"Authorization": f"token {token}"}
        mine = requests.get(
            hub.server_url("b12ann", "api/status"), headers=auth, verify=ann.session.verify
        )
        assert mine.status_code == 200
        gpu = requests.get(
            hub.server_url("b12ann", "api/gpu/v1/status"), headers=auth, verify=ann.session.verify
        )
        assert gpu.status_code == 200 and gpu.json()["state"] == "no_gpu"
        theirs = requests.get(
            hub.server_url("b12ben", "api/gpu/v1/status"), headers=auth, verify=ann.session.verify
        )
        assert theirs.status_code == 403
        r = ann.post(
            "hub/api/users/b12ann/tokens",
            json={"note": "narrow", "scopes": ["read:users:name!user"]},
        )
        narrow = {"Authorization": f"token {r.json()['token']}"}
        refused = requests.get(
            hub.server_url("b12ann", "api/status"), headers=narrow, verify=ann.session.verify
        )
        assert refused.status_code == 403
    finally:
        for name in users:
            hub.api("DELETE", f"users/{name}/server")
        # The hub_factory fixture removes this hub's containers and its own home volumes.
