"""Container labels that record GPU assignments: written, read back, and bad ones survived."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest

from spawner.gpu.allocator import Gpu
from spawner.gpu.labels import (
    GPUS_LABEL,
    PROFILE_LABEL,
    SERVER_LABEL,
    SINCE_LABEL,
    USER_LABEL,
    container_labels,
    holding_from_labels,
    read_holding,
)

SINCE = datetime(2025, 1, 31, 9, 15, tzinfo=timezone.utc)


def good_labels(**overrides) -> dict[str, str]:
    labels = container_labels(
        user="alice",
        server="alice/big",
        gpus=[Gpu(0, "GPU-aaaa"), Gpu(1, "GPU-bbbb")],
        since=SINCE,
        profile="pytorch",
    )
    labels.update(overrides)
    return labels


def test_labels_round_trip_to_the_same_holding():
    labels = good_labels()
    assert labels == {
        USER_LABEL: "alice",
        SERVER_LABEL: "alice/big",
        GPUS_LABEL: "GPU-aaaa,GPU-bbbb",
        SINCE_LABEL: "2025-01-31T09:15:00Z",
        PROFILE_LABEL: "pytorch",
    }
    holding, reason = read_holding(labels)
    assert reason is None
    assert holding.user == "alice"
    assert holding.server == "alice/big"
    assert holding.gpu_ids == ("GPU-aaaa", "GPU-bbbb")
    assert holding.since == SINCE
    assert holding.profile == "pytorch"


def test_since_is_written_in_utc_whatever_zone_it_comes_in():
    paris = SINCE.astimezone(timezone(timedelta(hours=1)))
    labels = container_labels(user="a", server="a", gpus=["0"], since=paris.isoformat())
    assert labels[SINCE_LABEL] == "2025-01-31T09:15:00Z"
    with pytest.raises(ValueError, match="time zone"):
        container_labels(user="a", server="a", gpus=["0"], since=datetime(2025, 1, 1))


def test_a_cpu_only_container_carries_no_gpu_labels_and_holds_nothing():
    labels = container_labels(user="bob", server="bob", gpus=[], since=SINCE, profile="cpu")
    assert labels == {USER_LABEL: "bob", SERVER_LABEL: "bob", PROFILE_LABEL: "cpu"}
    assert read_holding(labels) == (None, None)
    assert read_holding({"com.example": "x"}) == (None, None)


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({GPUS_LABEL: ""}, GPUS_LABEL),
        ({GPUS_LABEL: "0,,1"}, GPUS_LABEL),
        ({GPUS_LABEL: "0 1"}, GPUS_LABEL),
        ({GPUS_LABEL: "0;rm -rf"}, GPUS_LABEL),
        ({GPUS_LABEL: "0,0"}, "twice"),
        ({USER_LABEL: ""}, USER_LABEL),
        ({SERVER_LABEL: " "}, SERVER_LABEL),
        ({SERVER_LABEL: "mallory/big"}, "does not belong"),
    ],
)
def test_malformed_labels_are_ignored_with_a_reason(overrides, says):
    holding, reason = read_holding(good_labels(**overrides))
    assert holding is None
    assert says in reason


def test_a_bad_time_keeps_the_gpus_held_and_says_why():
    # Dropping the holding would let the hub hand these busy GPUs to someone else.
    holding, reason = read_holding(good_labels(**{SINCE_LABEL: "yesterday"}))
    assert holding.gpu_ids == ("GPU-aaaa", "GPU-bbbb")
    assert holding.since is None
    assert SINCE_LABEL in reason


def test_since_without_a_zone_is_read_as_utc():
    holding, _ = read_holding(good_labels(**{SINCE_LABEL: "2025-01-31T09:15:00"}))
    assert holding.since == SINCE


def test_missing_labels_are_logged_not_raised(caplog):
    log = logging.getLogger("test-hub")
    with caplog.at_level(logging.WARNING, logger="test-hub"):
        assert holding_from_labels({GPUS_LABEL: "0"}, log=log, where="jupyter-x") is None
    assert "jupyter-x" in caplog.text and USER_LABEL in caplog.text and "ignored" in caplog.text


def test_labels_need_a_user_and_server_and_real_gpu_ids():
    with pytest.raises(ValueError):
        container_labels(user="", server="a", gpus=["0"])
    with pytest.raises(ValueError, match="Not GPU ids"):
        container_labels(user="a", server="a", gpus=["0,1"])
