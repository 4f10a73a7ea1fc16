"""Hub identity and ownership decisions (issue 14): pure, plus the id file."""

from __future__ import annotations

import threading

import pytest
from traitlets.config import Config

from spawner.engine.hub_identity import (
    HUB_LABEL,
    data_directory,
    foreign_container,
    hub_identity,
    is_ours,
    owner_of,
)


def test_the_hub_id_is_generated_once_and_kept(tmp_path):
    first = hub_identity(tmp_path)
    assert first.startswith("hub-") and (tmp_path / "hub-id").read_text().strip() == first
    assert hub_identity(tmp_path) == first


def test_hubs_starting_at_once_on_one_data_directory_agree_on_one_id(tmp_path):
    seen: list[str] = []
    threads = [
        threading.Thread(target=lambda: seen.append(hub_identity(tmp_path))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 8 and len(set(seen)) == 1


def test_a_damaged_id_file_is_a_sentence_not_a_new_identity(tmp_path):
    (tmp_path / "hub-id").write_text("not an id!\n")
    with pytest.raises(ValueError, match="does not hold a hub id"):
        hub_identity(tmp_path)


def test_the_data_directory_is_where_the_database_lives(tmp_path):
    assert data_directory(f"sqlite:///{tmp_path}/jupyterhub.sqlite", "/x") == tmp_path
    assert str(data_directory("postgresql://db/hub", "/srv/hub")) == "/srv/hub"


def test_only_objects_with_our_id_are_ours():
    assert is_ours({HUB_LABEL: "hub-1"}, "hub-1")
    assert not is_ours({HUB_LABEL: "hub-2"}, "hub-1")
    assert not is_ours({}, "hub-1") and not is_ours(None, "hub-1")
    assert not is_ours({HUB_LABEL: ""}, "")  # no identity: nothing is ours
    assert owner_of({HUB_LABEL: " hub-2 "}) == "hub-2"


def test_a_foreign_container_message_names_it_and_the_admins_way_out():
    user, admin = foreign_container("jupyter-alice", {HUB_LABEL: "hub-prod"})
    assert "jupyter-alice" in user and "left untouched" in user
    assert "hub-prod" in admin and "docker rm -f jupyter-alice" in admin
    _, admin = foreign_container("jupyter-alice", {})
    assert "not a hub" in admin


def test_the_spawner_default_hub_id_comes_from_the_database_directory(tmp_path):
    from types import SimpleNamespace

    from spawner.docker_edge.spawner import CUDADockerSpawner

    config = Config()
    config.JupyterHub.db_url = f"sqlite:///{tmp_path}/jupyterhub.sqlite"
    s = CUDADockerSpawner(user=SimpleNamespace(name="a", groups=[]), config=config)
    assert s.hub_id == (tmp_path / "hub-id").read_text().strip()
    assert s.site_settings().hub_id == s.hub_id


def test_a_bad_configured_hub_id_stops_with_a_sentence():
    from traitlets import TraitError

    from spawner.docker_edge.spawner import CUDADockerSpawner

    with pytest.raises(TraitError, match="hub_id"):
        CUDADockerSpawner(hub_id="has space")


def test_threads_racing_at_a_hub_start_share_one_docker_client(monkeypatch):
    """With several Docker threads (`docker_threads`), the first calls of a hub's start race
    for DockerSpawner's client: exactly one is made, and every thread gets it."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor
    from types import SimpleNamespace

    import dockerspawner.dockerspawner as ds

    from spawner.docker_edge.spawner import CUDADockerSpawner

    made = []

    class SlowClient:  # docker.APIClient asks the engine its version: slow enough to race
        def __init__(self, **kwargs) -> None:
            time.sleep(0.05)
            made.append(self)

    monkeypatch.setattr(ds.docker, "APIClient", SlowClient)
    monkeypatch.setattr(CUDADockerSpawner, "_client", None)
    spawner = CUDADockerSpawner(user=SimpleNamespace(name="a", groups=[]))
    start = threading.Barrier(8)

    def first_call(_):
        start.wait()
        return spawner.client

    with ThreadPoolExecutor(8) as pool:
        clients = list(pool.map(first_call, range(8)))
    assert len(made) == 1 and all(c is made[0] for c in clients)
