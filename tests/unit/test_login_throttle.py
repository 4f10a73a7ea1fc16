"""Failed logins slow down per (user, source address); nobody can lock anyone else out."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from spawner.accounts.login_throttle import (
    LoginThrottle,
    client_address,
    is_host_address,
    login_wait_message,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def throttle(clock, **kw) -> LoginThrottle:
    return LoginThrottle(
        **{"free_failures": 3, "base_delay": 2.0, "max_delay": 60.0, "clock": clock, **kw}
    )


def test_free_failures_cost_nothing_then_the_delay_doubles_up_to_the_cap(clock):
    t = throttle(clock)
    waits = []
    for _ in range(10):
        t.failed("ann", "10.0.0.1")
        waits.append(t.wait("ann", "10.0.0.1"))
    assert waits == [0, 0, 2, 4, 8, 16, 32, 60, 60, 60]


def test_waiting_out_the_delay_allows_one_more_try(clock):
    t = throttle(clock)
    for _ in range(4):
        t.failed("ann", "10.0.0.1")
    assert t.wait("ann", "10.0.0.1") == 4
    clock.now += 3
    assert t.wait("ann", "10.0.0.1") == 1
    clock.now += 1
    assert t.wait("ann", "10.0.0.1") == 0


def test_another_source_and_another_user_are_never_slowed(clock):
    t = throttle(clock)
    for _ in range(8):
        t.failed("admin", "203.0.113.7")
    assert t.wait("admin", "203.0.113.7") > 0
    assert t.wait("admin", "192.0.2.1") == 0
    assert t.wait("ann", "203.0.113.7") == 0


def test_success_clears_the_pair(clock):
    t = throttle(clock)
    for _ in range(5):
        t.failed("ann", "a")
    t.succeeded("ann", "a")
    assert t.wait("ann", "a") == 0
    t.failed("ann", "a")
    assert t.wait("ann", "a") == 0  # counting starts again from one


def test_a_pair_is_forgotten_an_hour_after_its_last_failure(clock):
    t = throttle(clock)
    for _ in range(6):
        t.failed("ann", "a")
    clock.now += 3601
    assert t.wait("ann", "a") == 0
    t.failed("ann", "a")
    assert t.wait("ann", "a") == 0


def test_memory_stays_bounded_under_a_spray_of_sources(clock):
    t = throttle(clock, max_entries=100)
    for i in range(1000):
        clock.now += 0.001
        t.failed("admin", f"10.0.{i // 256}.{i % 256}")
    assert len(t._failures) <= 101


def test_message_says_how_long_and_that_other_addresses_still_work():
    msg = login_wait_message(3.2)
    assert "try again in 4 seconds" in msg and "Other addresses are not affected" in msg
    assert "1 second." in login_wait_message(0.2)


def handler(peer: str, headers: dict):
    request = SimpleNamespace(
        connection=SimpleNamespace(context=SimpleNamespace(address=(peer, 5555))),
        remote_ip=headers.get("X-Real-Ip", peer),
        headers=headers,
    )
    return SimpleNamespace(request=request)


HOST = {"127.0.0.1", "192.0.2.2", "172.30.0.1"}  # this host's addresses, in these tests


def test_through_the_proxy_the_source_is_the_address_the_proxy_appended():
    h = handler("127.0.0.1", {"X-Forwarded-For": "6.6.6.6, 198.51.100.4"})
    assert client_address(h, HOST.__contains__) == "198.51.100.4"
    # The proxy may connect from any of the host's addresses (here its LAN address).
    h = handler("192.0.2.2", {"X-Forwarded-For": "198.51.100.4"})
    assert client_address(h, HOST.__contains__) == "198.51.100.4"


def test_a_client_cannot_choose_its_source_with_headers():
    # X-Real-Ip passes through the proxy unchanged; only the appended entry counts.
    h = handler("127.0.0.1", {"X-Forwarded-For": "198.51.100.4", "X-Real-Ip": "1.2.3.4"})
    assert client_address(h, HOST.__contains__) == "198.51.100.4"
    # A container talking to the hub's port directly is known by its own address.
    h = handler("172.30.0.5", {"X-Forwarded-For": "1.2.3.4", "X-Real-Ip": "1.2.3.4"})
    assert client_address(h, HOST.__contains__) == "172.30.0.5"


def test_only_addresses_of_this_host_count_as_local():
    assert is_host_address("127.0.0.1") and is_host_address("127.0.0.9")
    assert not is_host_address("203.0.113.77")  # TEST-NET-3, never assigned here
    assert not is_host_address("not an address")
