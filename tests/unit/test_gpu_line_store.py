"""The line for busy GPUs on disk: places survive the process, one per user, admin moves."""

from __future__ import annotations

from spawner.gpu.line_store import LineStore
from spawner.gpu.waiting_line import Waiter


def waiter(user: str, joined: float, gpus: int = 1) -> Waiter:
    return Waiter(user, user, "host", gpus, joined, ("staff",), {"profile": "gpu", "wait": True})


def test_places_outlive_the_store_object_and_keep_their_choice(tmp_path):
    path = tmp_path / "gpu-line.sqlite"
    LineStore(path).join(waiter("carol", 10.0))
    LineStore(path).join(waiter("dave", 20.0, gpus=2))
    line = LineStore(path).load()  # as a restarted hub reads it
    assert [w.user for w in line.order("host")] == ["carol", "dave"]
    assert line.place_of("dave").gpus == 2 and line.place_of("dave").groups == ("staff",)
    assert line.place_of("carol").options == {"profile": "gpu", "wait": True}
    assert path.stat().st_mode & 0o077 == 0


def test_asking_again_keeps_the_first_place_and_leaving_removes_it(tmp_path):
    store = LineStore(tmp_path / "line.sqlite")
    store.join(waiter("carol", 10.0))
    store.join(waiter("dave", 20.0))
    assert store.join(waiter("carol", 30.0, gpus=2)).joined == 10.0
    assert store.load().position("carol") == 1
    assert store.leave("carol") and not store.leave("carol")
    assert store.load().position("dave") == 1


def test_an_admin_moves_someone_to_the_front(tmp_path):
    store = LineStore(tmp_path / "line.sqlite")
    for i, user in enumerate(("carol", "dave", "erin")):
        store.join(waiter(user, 10.0 + i))
    assert store.move_to_front("erin") and not store.move_to_front("zoe")
    assert [w.user for w in store.load().order("host")] == ["erin", "carol", "dave"]
