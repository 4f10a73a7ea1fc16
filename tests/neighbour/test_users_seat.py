"""Issue 23, from an ordinary user's seat on the default deployment (HTTPS, native sign-up,
internal TLS, its managed services): the SSH keys page works for a signed-up, approved,
non-admin user; the GPU admin page (and its view of the line for GPUs) is the admins'
alone and takes no words from a link;
service pages send the hub's security headers.
"""

from __future__ import annotations

import re
import time

import pytest
import requests

from spawner.gpu.line_store import LineStore
from spawner.gpu.waiting_line import Waiter
from spawner.host.security_headers import HEADERS
from tests.hubtools import TEST_PREFIX, Browser
from tests.ssh.sshtools import (
    SshTarget,
    has_openssh_client,
    make_key,
    wait_for_port,
    write_known_hosts,
)

from .conftest import HONEST

pytestmark = [pytest.mark.docker, pytest.mark.hub]


def _form_xsrf(html: str) -> str:
    found = re.search(r'name="_xsrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


@pytest.mark.skipif(not has_openssh_client(), reason="needs Debian's openssh-client")
def test_a_non_admin_adds_a_key_logs_in_with_openssh_and_removes_it(deployment, tmp_path):
    hub, user = deployment.hub, deployment.users[HONEST]
    port = int(hub.env["CUDASPAWNER_SSH_PORT"])
    wait_for_port(port)
    target = SshTarget(port, tmp_path / "known_hosts")
    write_known_hosts(hub.data_dir, port, target.known_hosts)
    key = make_key(tmp_path, "hon")

    page = user.get("services/ssh/")  # hub OAuth, then the page, as the user
    assert page.status_code == 200 and f"ssh -p {port} {HONEST}@" in page.text, page.text[:500]
    added = user.session.post(
        hub.service_url("ssh"),
        data={"key": key.public_line, "name": "laptop", "_xsrf": _form_xsrf(page.text)},
        timeout=30,
    )
    assert added.status_code == 200 and "laptop" in added.text, added.text[:500]

    deployment.start_server(HONEST, "cpu")
    try:
        r = target.ssh(HONEST, key, "id -un; echo $HOME")
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["jovyan", "/home/jovyan"]

        key_id = re.search(r"keys/(\d+)/remove", added.text).group(1)
        removed = user.session.post(
            hub.service_url("ssh", f"keys/{key_id}/remove"),
            data={"_xsrf": _form_xsrf(added.text)},
            timeout=30,
        )
        assert removed.status_code == 200 and "Key removed" in removed.text
        again = target.ssh(HONEST, key, "true")
        assert again.returncode != 0 and "Permission denied" in again.stderr
    finally:
        deployment.stop_server(HONEST)


def test_the_gpu_admin_page_is_403_for_a_user_and_works_for_the_admin(deployment):
    user, admin = deployment.users[HONEST], deployment.admin
    refused = user.get("services/gpu-admin/")
    # Refused by the hub's OAuth or by the page itself, with a sentence either way.
    assert refused.status_code == 403, refused.text[:300]
    assert "Only hub admins" in refused.text or "permission" in refused.text, refused.text
    page = admin.get("services/gpu-admin/?message=Your+password+expired:+visit+evil.example")
    assert page.status_code == 200 and "GPU" in page.text
    assert "evil.example" not in page.text and "password expired" not in page.text


@pytest.mark.parametrize("path", ["usage", "usage.csv?by=user", "holds.csv", "api/gpus"])
def test_the_usage_record_and_the_line_are_the_admins_alone(deployment, path):
    """Issue 25/26's new pages: a signed-up user gets 403; an outsider (no session) is sent
    to log in and sees no figure; the admin gets them."""

    hub, user, admin = deployment.hub, deployment.users[HONEST], deployment.admin
    refused = user.get(f"services/gpu-admin/{path}")
    assert refused.status_code == 403, refused.text[:300]
    outsider = requests.get(
        hub.service_url("gpu-admin", path), verify=hub.verify, allow_redirects=False, timeout=30
    )
    assert outsider.status_code in (302, 403), outsider.text[:300]
    assert HONEST not in outsider.text and "gpu_hours" not in outsider.text
    line = requests.post(
        hub.service_url("gpu-admin", "line"),
        data={"user": HONEST, "action": "remove"},
        verify=hub.verify,
        allow_redirects=False,
        timeout=30,
    )
    assert line.status_code == 403, line.text[:300]  # no session, no XSRF: nothing changes
    assert admin.get(f"services/gpu-admin/{path}").status_code == 200


@pytest.mark.parametrize("service", ["ssh", "gpu-admin"])
def test_service_pages_send_the_hubs_security_headers(deployment, service):
    r = deployment.admin.get(f"services/{service}/")
    assert r.status_code == 200
    for name, value in HEADERS.items():
        assert r.headers.get(name) == value, (name, dict(r.headers))


@pytest.mark.skipif(not has_openssh_client(), reason="needs Debian's openssh-client")
def test_a_deleted_accounts_files_and_keys_never_reach_a_new_account_of_that_name(
    deployment, tmp_path
):
    import subprocess
    import sys

    from tests.integration.test_security import approve, logged_in, signup

    hub, admin = deployment.hub, deployment.admin
    name, volume = "nbcarol", f"{TEST_PREFIX}-home-nbcarol"
    port = int(hub.env["CUDASPAWNER_SSH_PORT"])
    target = SshTarget(port, tmp_path / "known_hosts")
    write_known_hosts(hub.data_dir, port, target.known_hosts)
    key = make_key(tmp_path, "carol")

    def new_account(password: str):
        signup(hub, name, password)
        approve(admin, name)
        user = Browser(hub)
        assert logged_in(user.login(name, password))
        deployment.users[name] = user
        return user

    def admin_cli(*args: str) -> subprocess.CompletedProcess:
        db = str(hub.data_dir / "jupyterhub.sqlite")
        return subprocess.run(
            [sys.executable, "-m", "spawner.admin.recovery", "homes", "--db", db,
             "--hub-id", hub.hub_id, *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    # The first carol: a key, a server, a secret in her home.
    first = new_account("first-carol-passphrase")
    page = first.get("services/ssh/")
    first.session.post(
        hub.service_url("ssh"),
        data={"key": key.public_line, "name": "old", "_xsrf": _form_xsrf(page.text)},
        timeout=30,
    )
    deployment.start_server(name, "cpu")
    r = target.ssh(name, key, "echo the-first-carols-secret > ~/secret.txt && cat ~/secret.txt")
    assert r.returncode == 0 and "the-first-carols-secret" in r.stdout, r.stderr

    # The admin deletes her (the hub stops her server first).
    assert hub.api("DELETE", f"users/{name}").status_code == 204
    assert hub.api("GET", f"users/{name}").status_code == 404

    # A new person signs up as carol: the old key does not log in, the old home is not hers.
    second = new_account("second-carol-passphrase")
    refused = target.ssh(name, key, "cat ~/secret.txt")
    assert refused.returncode != 0 and "the-first-carols-secret" not in refused.stdout
    r = second.spawn(name, {"profile": "cpu"})
    assert r.status_code == 409 and "earlier account named nbcarol" in r.text, r.text[:500]

    # The admin decides: the orphaned home is listed, then removed.
    listed = admin_cli()
    assert listed.returncode == 0 and f"{volume}\t{name}\tORPHANED" in listed.stdout, listed
    removed = admin_cli("--remove", volume)
    assert removed.returncode == 0 and "Removed" in removed.stdout, removed.stderr
    deployment.start_server(name, "cpu")
    try:
        home = deployment.container(name).exec_run(["sh", "-c", "ls -A ~"], user="1000:100")
        assert b"secret.txt" not in home.output, home.output
    finally:
        deployment.stop_server(name)


@pytest.mark.skipif(not has_openssh_client(), reason="needs Debian's openssh-client")
def test_a_user_renamed_through_the_hub_api_keeps_their_home_keys_and_password(
    deployment, tmp_path
):
    from tests.integration.test_security import approve, logged_in, signup

    hub, admin = deployment.hub, deployment.admin
    old, new = "nbdave", "nbdavid"
    port = int(hub.env["CUDASPAWNER_SSH_PORT"])
    target = SshTarget(port, tmp_path / "known_hosts")
    write_known_hosts(hub.data_dir, port, target.known_hosts)
    key = make_key(tmp_path, "dave")

    signup(hub, old, "daves-long-passphrase")
    approve(admin, old)
    dave = Browser(hub)
    assert logged_in(dave.login(old, "daves-long-passphrase"))
    deployment.users[old] = dave
    page = dave.get("services/ssh/")
    dave.session.post(
        hub.service_url("ssh"),
        data={"key": key.public_line, "name": "laptop", "_xsrf": _form_xsrf(page.text)},
        timeout=30,
    )
    deployment.start_server(old, "cpu")
    r = target.ssh(old, key, "echo daves-notes > ~/notes.txt && cat ~/notes.txt")
    assert r.returncode == 0 and "daves-notes" in r.stdout, r.stderr
    deployment.stop_server(old)

    renamed = hub.api("PATCH", f"users/{old}", json={"name": new})
    assert renamed.status_code == 200 and renamed.json()["name"] == new, renamed.text
    deployment.users[new] = deployment.users.pop(old)  # the same session, the same account
    deployment.start_server(new, "cpu")
    try:
        r = target.ssh(new, key, "cat ~/notes.txt")
        assert r.returncode == 0 and "daves-notes" in r.stdout, r.stderr
        assert target.ssh(old, key, "true").returncode != 0  # the old name is no one's now
        # The password follows too: the new name logs in with it, the old one no more.
        assert logged_in(Browser(hub).login(new, "daves-long-passphrase"))
        assert not logged_in(Browser(hub).login(old, "daves-long-passphrase"))
    finally:
        deployment.stop_server(new)


def test_the_admin_reorders_and_removes_places_in_the_gpu_line_and_a_user_cannot(deployment):
    """The admin page's view of the line for busy GPUs (issue 25). The places are written
    into the deployment's line file for accounts the hub does not have, so the operations
    service's attempts to start their waits again change nothing."""
    hub, admin, user = deployment.hub, deployment.admin, deployment.users[HONEST]
    store = LineStore(hub.data_dir / "gpu-line.sqlite")
    now = time.time()
    for i, name in enumerate(("qfirst", "qsecond")):
        store.join(Waiter(name, name, "host", 1 + i, now - 600 + i, (), {"profile": "gpu"}))
    try:
        page = admin.get("services/gpu-admin/")
        assert page.status_code == 200
        rows = re.findall(r'<tr data-user="(q\w+)">\s*<td class="num">(\d)</td>', page.text)
        assert rows == [("qfirst", "1"), ("qsecond", "2")], page.text[-2000:]
        assert "10 min" in page.text  # how long qfirst has waited
        listed = admin.get("services/gpu-admin/api/gpus").json()["line"]
        assert [(p["user"], p["place"], p["gpus"]) for p in listed] == [
            ("qfirst", 1, 1),
            ("qsecond", 2, 2),
        ]

        # An ordinary user can neither see the line nor change it (XSRF token of their
        # own SSH page, so the refusal is the page's, not the form check's).
        own = user.get("services/ssh/")
        for action in ("front", "remove"):
            refused = user.session.post(
                hub.service_url("gpu-admin", "line"),
                data={"user": "qsecond", "action": action, "_xsrf": _form_xsrf(own.text)},
                timeout=30,
            )
            assert refused.status_code == 403, refused.text[:300]
        assert user.get("services/gpu-admin/api/gpus").status_code == 403
        assert [w.user for w in store.load().order("host")] == ["qfirst", "qsecond"]

        # The admin moves qsecond to the front, then removes qfirst.
        moved = admin.session.post(
            hub.service_url("gpu-admin", "line"),
            data={"user": "qsecond", "action": "front", "_xsrf": _form_xsrf(page.text)},
            timeout=30,
        )
        assert moved.status_code == 200 and "qsecond is first in the line" in moved.text
        assert [w.user for w in store.load().order("host")] == ["qsecond", "qfirst"]
        removed = admin.session.post(
            hub.service_url("gpu-admin", "line"),
            data={"user": "qfirst", "action": "remove", "_xsrf": _form_xsrf(moved.text)},
            timeout=30,
        )
        assert removed.status_code == 200 and "qfirst was removed" in removed.text
        assert [w.user for w in store.load().waiters] == ["qsecond"]
        unknown = admin.session.post(
            hub.service_url("gpu-admin", "line"),
            data={"user": "qnobody", "action": "remove", "_xsrf": _form_xsrf(removed.text)},
            timeout=30,
        )
        assert unknown.status_code == 404 and "qnobody has no place in the line" in unknown.text
    finally:
        for name in ("qfirst", "qsecond"):
            store.leave(name)
