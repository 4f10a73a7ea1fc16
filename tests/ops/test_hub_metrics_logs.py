"""Hub metrics from the service's snapshot, refusals and spawn durations, and JSON logs."""

from __future__ import annotations

import json
import logging

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from spawner.services import hub_metrics
from spawner.services.hub_metrics import FleetCollector, record_refusal, record_spawn
from spawner.services.json_logs import JsonFormatter, logging_config


def _samples(registry) -> dict:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def _snapshot(tmp_path, written_at: float) -> FleetCollector:
    path = tmp_path / "fleet.json"
    path.write_text(
        json.dumps(
            {
                "written_at": written_at,
                "interval": 30,
                "total": 8,
                "held_by_profile": {"train": 3, "big": 4},
                "held_by_group": {"ml": 7},
                "idle_by_profile": {"train": 1},
                "idle_by_group": {"ml": 1},
                "reclaimed_by_profile": {"train": 5},
            }
        )
    )
    return FleetCollector(path, clock=lambda: 1000.0)


def test_fleet_figures_come_from_a_fresh_snapshot(tmp_path):
    registry = CollectorRegistry()
    registry.register(_snapshot(tmp_path, written_at=990.0))
    m = _samples(registry)
    assert m[("cudaspawner_gpus_total", ())] == 8
    assert m[("cudaspawner_gpus_held", (("profile", "big"),))] == 4
    assert m[("cudaspawner_gpus_held_by_group", (("group", "ml"),))] == 7
    assert m[("cudaspawner_gpus_idle", (("profile", "train"),))] == 1
    assert m[("cudaspawner_gpus_reclaimed_total", (("profile", "train"),))] == 5
    assert m[("cudaspawner_fleet_snapshot_age_seconds", ())] == 10


def test_a_stale_or_missing_snapshot_exports_no_fleet_figures(tmp_path):
    registry = CollectorRegistry()
    registry.register(_snapshot(tmp_path, written_at=800.0))  # > 3 looks old
    assert not [k for k in _samples(registry) if k[0].startswith("cudaspawner_gpus")]
    registry = CollectorRegistry()
    registry.register(FleetCollector(tmp_path / "absent.json"))
    assert _samples(registry) == {}


def test_refusals_are_counted_by_reason_and_logged_with_fields(caplog):
    before = hub_metrics.SPAWN_REFUSALS.labels("no_free_gpu")._value.get()
    other = hub_metrics.SPAWN_REFUSALS.labels("other")._value.get()
    with caplog.at_level(logging.INFO, logger="JupyterHub.cudaspawner"):
        record_refusal("no_free_gpu", user="ann", server="ann", profile="train", gpus=2,
                       message="2 GPUs requested, 0 free of 4")  # fmt: skip
        record_refusal("made-up reason")
    assert hub_metrics.SPAWN_REFUSALS.labels("no_free_gpu")._value.get() == before + 1
    assert hub_metrics.SPAWN_REFUSALS.labels("other")._value.get() == other + 1
    record = caplog.records[0]
    assert (record.user, record.profile, record.gpus, record.reason) == (
        "ann", "train", 2, "no_free_gpu")  # fmt: skip


def test_spawn_durations_land_in_the_profiles_histogram():
    histogram = hub_metrics.SPAWN_DURATION.labels("big")
    count = histogram._sum.get()
    record_spawn("big", 4.5, user="bob", server="bob/big", gpus=["GPU-1"])
    assert histogram._sum.get() == count + 4.5


def test_json_log_lines_carry_the_fields_loki_indexes():
    record = logging.LogRecord("JupyterHub.cudaspawner", logging.INFO, __file__, 1,
                               "Spawn refused (%s)", ("gpu_quota",), None)  # fmt: skip
    record.user, record.server, record.profile = "ann", "ann/x", "train"
    record.gpus, record.reason = ["GPU-0"], "gpu_quota"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "Spawn refused (gpu_quota)"
    assert {k: entry[k] for k in ("level", "user", "server", "profile", "gpus", "reason")} == {
        "level": "info", "user": "ann", "server": "ann/x", "profile": "train",
        "gpus": ["GPU-0"], "reason": "gpu_quota",
    }  # fmt: skip
    assert entry["time"].endswith("+00:00")
    plain = json.loads(JsonFormatter().format(logging.makeLogRecord({"msg": "a\nb"})))
    assert plain["message"] == "a\nb" and "user" not in plain


def test_the_hub_logging_config_turns_the_console_into_json():
    from traitlets.config import Application

    app = Application(logging_config=logging_config())
    app.log.info("hello %s", "world", extra={"user": "ann"})
    handler = next(h for h in app.log.handlers if isinstance(h.formatter, JsonFormatter))
    assert handler is not None
