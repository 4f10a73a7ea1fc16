"""One origin per user server: the names, the certificate check, the hub's own name only."""

from __future__ import annotations

import pytest

from spawner.host.deployment import ensure_self_signed_cert
from spawner.host.hub_host_guard import foreign_host, hub_page_path
from spawner.host.user_origins import (
    OriginProblem,
    certificate_names,
    certificate_problem,
    check_domain,
    subdomain_host,
)


@pytest.mark.parametrize(
    ("bind_url", "expected"),
    [
        ("https://:8443", "https://hub.localhost:8443"),
        ("https://0.0.0.0:443", "https://hub.localhost"),
        ("http://127.0.0.1:8000", "http://hub.localhost:8000"),
        ("http://:80", "http://hub.localhost"),
    ],
)
def test_servers_are_served_on_the_public_name_with_the_bind_urls_scheme_and_port(
    bind_url, expected
):
    assert subdomain_host(bind_url, "hub.localhost") == expected


@pytest.mark.parametrize(
    ("domain", "sentence"),
    [
        ("localhost", "at least two labels"),
        ("127.0.0.1", "is an address"),
        ("[::1]", "is an address"),
        ("hub..example.org", "at least two labels"),
    ],
)
def test_a_public_name_that_cannot_hold_users_names_is_a_sentence(domain, sentence):
    with pytest.raises(OriginProblem, match=sentence):
        check_domain(domain)


def test_a_public_name_is_lower_case_without_its_trailing_dot():
    assert check_domain("Hub.Example.ORG.") == "hub.example.org"


def _cert(tmp_path, names):
    cert, _, _ = ensure_self_signed_cert(tmp_path, names, [])
    return cert.read_bytes()


def test_a_certificate_for_the_name_and_its_wildcard_serves_the_hub_and_every_server(tmp_path):
    pem = _cert(tmp_path, certificate_names("hub.example.org"))
    assert certificate_problem(pem, "hub.example.org") is None


@pytest.mark.parametrize(
    "names",
    [["hub.example.org"], ["*.example.org"], ["*.hub.example.org"], ["other.example.org"]],
)
def test_a_certificate_missing_the_hub_or_the_servers_names_stops_the_hub_with_a_sentence(
    tmp_path, names
):
    problem = certificate_problem(_cert(tmp_path, names), "hub.example.org")
    assert problem and "*.hub.example.org" in problem and "CUDASPAWNER_DOMAIN" in problem


def test_a_file_that_is_no_certificate_is_a_sentence_too():
    assert "no DNS name" in certificate_problem(b"not a certificate", "hub.example.org")


@pytest.mark.parametrize(
    ("host", "foreign"),
    [
        ("hub.localhost", False),
        ("mallory.hub.localhost", True),
        ("MALLORY.hub.localhost.", True),
        ("ssh--service.hub.localhost", True),
        ("evilhub.localhost", False),  # not under the domain: not ours to judge
        ("172.18.0.1", False),  # the servers' API calls, by address
        ("127.0.0.1", False),
    ],
)
def test_only_names_under_the_hubs_domain_but_not_its_own_are_foreign(host, foreign):
    assert foreign_host(host, "hub.localhost") is foreign


def test_user_paths_stay_with_jupyterhubs_own_redirect_and_the_rest_are_hub_pages():
    assert not hub_page_path("/user/alice/lab")
    assert hub_page_path("/hub/login")
    assert hub_page_path("/hub/api/users/admin/tokens")
    assert hub_page_path("/")
    assert not hub_page_path("/base/user/alice/", "/base/")
    assert hub_page_path("/user/alice/", "/base/")
