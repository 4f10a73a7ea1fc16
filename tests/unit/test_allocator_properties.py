"""Properties of the allocator under random reserve / release / hub-restart sequences.

A hub restart is modelled as the hub does it: a new allocator with the same settings,
restored from the labels written on the (still running) containers.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from spawner.gpu.allocator import Gpu, GpuAllocator, GpuQuotaExceeded, GpuUnavailable
from spawner.gpu.labels import container_labels, holding_from_labels

USERS = ("alice", "bob", "carol")
GROUPS = ("students", "research")
quotas = st.none() | st.integers(min_value=0, max_value=4)


class AllocatorMachine(RuleBasedStateMachine):
    @initialize(
        n=st.integers(min_value=0, max_value=6),
        policy=st.sampled_from(["pack", "spread"]),
        user_quota=quotas,
        group_quotas=st.dictionaries(st.sampled_from(GROUPS), quotas),
        memberships=st.fixed_dictionaries(
            {u: st.lists(st.sampled_from(GROUPS), unique=True) for u in USERS}
        ),
    )
    def setup(self, n, policy, user_quota, group_quotas, memberships):
        self.inventory = [Gpu(index=i, id=f"GPU-{i:04x}", name="H100") for i in range(n)]
        self.settings = dict(policy=policy, user_quota=user_quota, group_quotas=group_quotas)
        self.memberships = memberships
        self.allocator = GpuAllocator(self.inventory, **self.settings)
        self.labels: dict[str, dict[str, str]] = {}  # server key -> its container's labels

    def limit(self, user: str) -> int | None:
        groups = [g for g in self.memberships[user] if g in self.settings["group_quotas"]]
        if not groups:
            return self.settings["user_quota"]
        limits = [self.settings["group_quotas"][g] for g in groups]
        return None if None in limits else max(limits)

    @rule(
        user=st.sampled_from(USERS),
        name=st.sampled_from(["", "a", "b"]),
        count=st.integers(min_value=0, max_value=7),
    )
    def reserve(self, user, name, count):
        key = f"{user}/{name}" if name else user
        a = self.allocator
        before = (a.holdings(), a.free())
        own = len(before[0][key].gpus) if key in before[0] else 0
        held_elsewhere = a.held_by_user(user) - own
        limit = self.limit(user)
        try:
            gpus = a.reserve(key, user, self.memberships[user], count)
        except GpuQuotaExceeded:
            assert limit is not None and held_elsewhere + count > limit
            assert (a.holdings(), a.free()) == before
            return
        except GpuUnavailable:
            assert limit is None or held_elsewhere + count <= limit
            assert count > len(before[1]) + own
            assert (a.holdings(), a.free()) == before
            return
        assert len(gpus) == count
        assert count == 0 or limit is None or held_elsewhere + count <= limit
        if gpus:
            self.labels[key] = container_labels(
                user=user, server=key, gpus=gpus, since="2025-01-01T00:00:00Z", profile="p"
            )
        else:
            self.labels.pop(key, None)

    @precondition(lambda self: self.labels)
    @rule(data=st.data())
    def release(self, data):
        key = data.draw(st.sampled_from(sorted(self.labels)))
        released = self.allocator.release(key)
        assert released
        del self.labels[key]
        assert self.allocator.release(key) == ()

    @rule()
    def restart(self):
        before = self.allocator.holdings()
        fresh = GpuAllocator(self.inventory, **self.settings)
        for labels in self.labels.values():
            holding = holding_from_labels(labels)
            assert holding is not None
            assert fresh.restore(holding.server, holding.user, holding.gpu_ids) == []
        assert fresh.holdings() == before
        self.allocator = fresh

    @invariant()
    def no_gpu_is_held_twice_and_none_leaks(self):
        if not hasattr(self, "allocator"):
            return
        held = [g.id for h in self.allocator.holdings().values() for g in h.gpus]
        assert len(held) == len(set(held))
        free = [g.id for g in self.allocator.free()]
        assert sorted(held + free) == sorted(g.id for g in self.inventory)

    @invariant()
    def nobody_exceeds_their_quota(self):
        if not hasattr(self, "allocator"):
            return
        for user in USERS:
            limit = self.limit(user)
            assert limit is None or self.allocator.held_by_user(user) <= limit

    @invariant()
    def labels_match_the_table(self):
        if not hasattr(self, "allocator"):
            return
        table = {k: [g.id for g in h.gpus] for k, h in self.allocator.holdings().items()}
        from_labels = {k: list(holding_from_labels(v).gpu_ids) for k, v in self.labels.items()}
        assert {k: sorted(v) for k, v in table.items()} == {
            k: sorted(v) for k, v in from_labels.items()
        }

    def teardown(self):
        if not hasattr(self, "allocator"):
            return
        for key in list(self.labels):
            self.allocator.release(key)
        assert self.allocator.holdings() == {}
        assert len(self.allocator.free()) == len(self.inventory)


AllocatorMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=25, deadline=None
)
test_allocator_state_machine = AllocatorMachine.TestCase


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=8),
    held=st.sets(st.integers(min_value=0, max_value=7)),
    count=st.integers(min_value=1, max_value=8),
)
def test_pack_gives_adjacent_gpus_whenever_a_free_block_is_big_enough(n, held, count):
    a = GpuAllocator([Gpu(i, str(i)) for i in range(n)])
    for i in sorted(h for h in held if h < n):
        a.restore(f"u{i}", f"u{i}", [str(i)])
    free = {g.index for g in a.free()}
    block_exists = any(all(s + k in free for k in range(count)) for s in range(n))
    if count > len(free):
        return
    got = [g.index for g in a.reserve("new", "new", [], count)]
    assert set(got) <= free and len(got) == count
    if block_exists:
        assert got == list(range(got[0], got[0] + count))
    else:
        assert got == sorted(free)[:count]
