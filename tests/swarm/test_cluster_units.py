"""Pure Swarm logic: the cluster's free GPUs, refusals, quotas, the GPU table, the service
spec built from the same start plan as a container, and the task entrypoint."""

from __future__ import annotations

import pytest

from spawner.admin.swarm_gpus_cli import render_table
from spawner.gpu.cluster import (
    CAPABILITY_LABEL,
    DRIVER_LABEL,
    GPU_COUNT_LABEL,
    NoNodeFits,
    capacity,
    check_fits,
    free_gpus,
    held_by_user,
    holdings,
    image_fit,
    matches,
    nodes_from_api,
    pending_reason,
)
from spawner.gpu.cuda_compat import ImageNeeds
from spawner.gpu.labels import GPUS_LABEL, SERVER_LABEL, SINCE_LABEL, USER_LABEL
from spawner.planning.availability import ProfileAvailability
from spawner.planning.choice import validate_user_options
from spawner.planning.form import spawn_form
from spawner.planning.plan import ImageFacts, SiteSettings, make_plan
from spawner.planning.profiles import parse_profiles
from spawner.swarm_edge.service_spec import (
    ENTRYPOINT_SOURCE,
    pick_port,
    published_ports,
    service_spec,
    swarm_start,
)
from spawner.swarm_edge.task_entrypoint import visible_devices


def api_node(node_id, hostname, gpus, labels=None, state="ready", role="worker", addr="10.0.0.1"):
    return {
        "ID": node_id,
        "Spec": {"Role": role, "Availability": "active", "Labels": labels or {}},
        "Status": {"State": state, "Addr": addr},
        "Description": {
            "Hostname": hostname,
            "Platform": {"OS": "linux", "Architecture": "x86_64"},
            "Resources": {
                "GenericResources": [
                    {"NamedResourceSpec": {"Kind": "NVIDIA-GPU", "Value": g}} for g in gpus
                ]
                + [{"DiscreteResourceSpec": {"Kind": "SSD", "Value": 1}}]
            },
        },
    }


def api_task(service, node, gpus, state="running", desired="running", err=""):
    return {
        "ServiceID": service,
        "NodeID": node,
        "DesiredState": desired,
        "Status": {"State": state, "Err": err},
        "AssignedGenericResources": [
            {"NamedResourceSpec": {"Kind": "NVIDIA-GPU", "Value": g}} for g in gpus
        ],
    }


def api_service(sid, user, count, server=None, since="2026-11-27T05:00:00Z"):
    labels = {USER_LABEL: user, SERVER_LABEL: server or user, GPU_COUNT_LABEL: str(count)}
    if since:
        labels[SINCE_LABEL] = since
    return {"ID": sid, "Spec": {"Name": f"jupyter-{user}", "Labels": labels}}


NODES = nodes_from_api(
    [
        api_node(
            "m", "manager", ["GPU-a", "GPU-b", "GPU-c", "GPU-d"], {"gpu": "a100"}, role="manager"
        ),
        api_node("w", "worker", ["GPU-h1", "GPU-h2"], {"gpu": "h100"}),
        api_node("down", "gone", ["GPU-x"], state="down"),
    ]
)


def test_engine_20_10_names_the_assignment_generic_resources():
    task = api_task("s", "m", [])
    task["GenericResources"] = task.pop("AssignedGenericResources")
    task["GenericResources"] = [{"NamedResourceSpec": {"Kind": "NVIDIA-GPU", "Value": "GPU-a"}}]
    assert capacity(NODES, [task]).free == 5


def test_nodes_advertise_only_their_nvidia_gpus_and_down_nodes_are_unusable():
    assert NODES[0].gpus == ("GPU-a", "GPU-b", "GPU-c", "GPU-d")
    assert NODES[1].labels == {"gpu": "h100"}
    assert [n.usable for n in NODES] == [True, True, False]


def test_free_counts_subtract_running_and_starting_tasks_but_not_finished_ones():
    tasks = [
        api_task("s1", "m", ["GPU-a"]),
        api_task("s2", "m", ["GPU-b"], state="starting"),
        api_task("s3", "m", ["GPU-c"], state="complete", desired="shutdown"),
    ]
    cap = capacity(NODES, tasks)
    assert (cap.nodes, cap.total, cap.free, cap.largest_free) == (2, 6, 4, 2)


def test_constraints_split_the_counts_per_node_type():
    tasks = [api_task("s1", "w", ["GPU-h1"])]
    h100 = capacity(NODES, tasks, ["node.labels.gpu == h100"])
    assert (h100.nodes, h100.total, h100.free, h100.largest_total) == (1, 2, 1, 2)
    not_h100 = capacity(NODES, tasks, ["node.labels.gpu != h100", "node.role == manager"])
    assert (not_h100.total, not_h100.free) == (4, 4)


def test_a_constraint_swarm_does_not_know_is_an_error_not_a_silent_match():
    with pytest.raises(ValueError, match="node.lables.gpu"):
        matches(NODES[0], ["node.lables.gpu == h100"])
    with pytest.raises(ValueError, match="placement constraint"):
        matches(NODES[0], ["gpu is h100"])


def test_a_request_no_node_can_hold_is_refused_with_the_largest_node_named():
    cap = capacity(NODES, [], ["node.labels.gpu == h100"])
    with pytest.raises(NoNodeFits, match="4 GPUs requested, but the largest node has 2 GPUs"):
        check_fits(4, cap)


def test_gpus_split_over_nodes_do_not_make_a_fit():
    # 2 free on each node: 4 free in all, yet no node can give 3 (a task's GPUs share a node).
    tasks = [api_task("s1", "m", ["GPU-a"]), api_task("s2", "m", ["GPU-b"])]
    cap = capacity(NODES, tasks)
    assert cap.free == 4
    with pytest.raises(NoNodeFits, match="at most 2 free on one node, 4 in all"):
        check_fits(3, cap)
    check_fits(2, cap)  # fits: no exception
    check_fits(0, capacity(NODES, [], ["node.labels.gpu == tpu"]))  # CPU needs no node with GPUs


def test_no_matching_node_is_a_sentence_for_the_user():
    with pytest.raises(NoNodeFits, match="No node of the cluster may run this profile"):
        check_fits(1, capacity(NODES, [], ["node.labels.gpu == tpu"]))


def test_quota_counts_the_users_other_servers_only():
    services = [
        api_service("1", "ann", 2),
        api_service("2", "ann", 1, server="ann/big"),
        api_service("3", "bob", 4),
    ]
    assert held_by_user(services, "ann") == 3
    assert held_by_user(services, "ann", except_server="ann/big") == 2
    assert held_by_user(services, "cat") == 0


def test_gpu_table_lists_gpu_node_user_and_since_from_tasks():
    services = [api_service("s1", "ann", 1), api_service("s2", "bob", 2), {"ID": "x", "Spec": {}}]
    tasks = [
        api_task("s1", "w", ["GPU-h2"]),
        api_task("s2", "m", ["GPU-c", "GPU-a"]),
        api_task("x", "m", ["GPU-d"]),  # not ours: no user label
        api_task("s1", "w", ["GPU-h1"], state="failed", desired="shutdown"),
    ]
    rows = holdings(NODES, tasks, services)
    assert [(r.gpu, r.node, r.user) for r in rows] == [
        ("GPU-a", "manager", "bob"),
        ("GPU-c", "manager", "bob"),
        ("GPU-h2", "worker", "ann"),
    ]
    assert rows[0].since.isoformat() == "2026-11-27T05:00:00+00:00"


def test_pending_reason_is_swarms_own_words():
    task = api_task(
        "s", "", [], state="pending", err="no suitable node (insufficient resources on 1 node)"
    )
    assert pending_reason(task) == "no suitable node (insufficient resources on 1 node)"


# --- the service spec: the same start plan as a container -----------------------------------
PROFILES = parse_profiles(
    [
        {"slug": "cpu", "display_name": "CPU", "default": True},
        {
            "slug": "two",
            "display_name": "Two GPUs",
            "gpus": 2,
            "mem_limit": "8G",
            "cpu_limit": 2,
            "shm_size": "1g",
            "volumes": {"/data/sets": {"bind": "/data", "mode": "ro"}},
        },
    ]
)


def plan_for(slug: str):
    choice = validate_user_options({"profile": slug}, PROFILES, gpus_on_host=4)
    return make_plan(
        choice,
        user_name="ann",
        server_key="ann",
        site=SiteSettings(),
        image=ImageFacts("cudaspawner/cpu:latest", "sha256:abc", user="1000:100"),
        gpus=(),  # on a cluster Swarm picks the devices: the plan carries the count alone
        since="2026-11-27T05:00:00+00:00" if choice.gpus else "",
    )


def spec_for(slug: str) -> dict:
    start = swarm_start(
        plan_for(slug), constraints=["node.labels.gpu == h100"], network="cudaswarm"
    )
    return service_spec(
        start,
        name="jupyter-ann",
        command=["jupyterhub-singleuser", "--port=8888"],
        env={**start.environment, "JUPYTERHUB_API_TOKEN": "t", "NVIDIA_VISIBLE_DEVICES": "all"},
        published_port=49200,
    )


def test_gpu_profile_reserves_generic_resources_and_leaves_devices_to_the_entrypoint():
    spec = spec_for("two")
    task = spec["task_template"]
    assert task["Resources"]["Reservations"]["GenericResources"] == [
        {"DiscreteResourceSpec": {"Kind": "NVIDIA-GPU", "Value": 2}}
    ]
    env = task["ContainerSpec"]["Env"]
    assert not any(e.startswith("NVIDIA_VISIBLE_DEVICES=") for e in env)
    assert "JUPYTERHUB_API_TOKEN=t" in env
    assert task["ContainerSpec"]["Command"][:3] == ["python3", "-c", ENTRYPOINT_SOURCE]
    assert task["ContainerSpec"]["Command"][3:] == ["jupyterhub-singleuser", "--port=8888"]
    assert task["Placement"]["Constraints"] == ["node.labels.gpu == h100"]
    labels = spec["labels"]
    assert labels[GPU_COUNT_LABEL] == "2" and labels[SINCE_LABEL] == "2026-11-27T05:00:00Z"
    assert GPUS_LABEL not in labels  # the ids are Swarm's: read from the task


def test_cpu_profile_reserves_nothing_and_keeps_gpus_hidden():
    start = swarm_start(plan_for("cpu"))
    spec = service_spec(start, name="jupyter-ann", command=[], env=start.environment)
    task = spec["task_template"]
    assert "Reservations" not in task["Resources"]
    assert "NVIDIA_VISIBLE_DEVICES=void" in task["ContainerSpec"]["Env"]
    assert GPU_COUNT_LABEL not in spec["labels"]


def test_hardening_limits_and_mounts_carry_over_from_the_plan():
    plan = plan_for("two")
    spec = spec_for("two")
    container = spec["task_template"]["ContainerSpec"]
    assert container["User"] == "1000:100"
    assert container["CapabilityDrop"] == ["ALL"]
    assert container["Labels"] == spec["labels"] and spec["labels"][USER_LABEL] == "ann"
    limits = spec["task_template"]["Resources"]["Limits"]
    assert limits == {"MemoryBytes": 8 * 1024**3, "NanoCPUs": 2 * 10**9, "Pids": 4096}
    mounts = {m["Target"]: m for m in container["Mounts"]}
    assert mounts["/data"] == {
        "Type": "bind", "Source": "/data/sets", "Target": "/data", "ReadOnly": True
    }  # fmt: skip
    home = mounts["/home/jovyan"]
    assert (home["Type"], home["Source"]) == ("volume", "cudaspawner-home-{username}")
    assert mounts["/dev/shm"]["TmpfsOptions"]["SizeBytes"] == 1024**3
    assert spec["labels"]["org.cudaspawner.plan"] == plan.fingerprint


def test_port_is_published_in_host_mode_with_dns_round_robin():
    endpoint = spec_for("cpu")["endpoint_spec"]
    assert endpoint == {
        "Mode": "dnsrr",
        "Ports": [
            {"Protocol": "tcp", "TargetPort": 8888, "PublishedPort": 49200, "PublishMode": "host"}
        ],
    }


def test_ports_in_use_are_skipped_and_a_full_range_is_an_error():
    services = [{"Spec": {"EndpointSpec": {"Ports": [{"PublishedPort": 49200}]}}}, {"Spec": {}}]
    used = published_ports(services)
    assert pick_port(used, 49200, 49202) == 49201
    with pytest.raises(ValueError, match="49200-49200"):
        pick_port(used, 49200, 49200)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DOCKER_RESOURCE_NVIDIA-GPU": "GPU-a,GPU-b"}, "GPU-a,GPU-b"),
        ({"DOCKER_RESOURCE_NVIDIA-GPU": " GPU-a , ", "NVIDIA_VISIBLE_DEVICES": "all"}, "GPU-a"),
        ({"NVIDIA_VISIBLE_DEVICES": "all"}, "void"),
        ({}, "void"),
        ({"NVIDIA_VISIBLE_DEVICES": "void"}, "void"),
    ],
)
def test_entrypoint_exposes_swarms_assignment_and_never_all(env, expected):
    assert visible_devices(env) == expected


def test_admin_table_shows_gpu_node_user_since_and_each_nodes_free_gpus():
    services = [api_service("s1", "ann", 1)]
    tasks = [api_task("s1", "w", ["GPU-h2"])]
    rows = holdings(NODES, tasks, services)
    text = render_table(NODES, rows, free_gpus(NODES, tasks))
    lines = text.splitlines()
    assert lines[0].split() == ["GPU", "NODE", "USER", "SERVER", "SINCE"]
    assert lines[1].split() == ["GPU-h2", "worker", "ann", "ann", "2026-11-27T05:00:00Z"]
    assert "worker: 1 of 2 GPUs free: GPU-h1" in lines
    assert "gone: not usable" in lines
    assert "(no server holds a GPU)" in render_table(NODES, [], free_gpus(NODES, []))


def test_form_shows_each_profile_the_free_gpus_of_its_own_nodes():
    # The worker (h100) is full while the manager has 4 free: only the h100 card is disabled.
    profiles = parse_profiles(
        [
            {"slug": "a100", "display_name": "A100", "gpus": 1, "default": True},
            {"slug": "h100", "display_name": "H100", "gpus": 1},
        ]
    )
    tasks = [api_task("s1", "w", ["GPU-h1"]), api_task("s2", "w", ["GPU-h2"])]
    per_profile = {}
    for slug, constraints in (
        ("a100", ["node.labels.gpu == a100"]),
        ("h100", ["node.labels.gpu == h100"]),
    ):
        cap = capacity(NODES, tasks, constraints)
        per_profile[slug] = ProfileAvailability(cap.largest_free, cap.largest_total)
    html = " ".join(spawn_form(profiles, None, free=None, total=4, per_profile=per_profile).split())
    assert "needs 1 GPU, 0 free of 2" in html
    assert "needs 1 GPU, 4 free" not in html and html.count("Not available right now") == 1


# --- issue 27: each node's driver and cards, and the image check per node ----------------

TORCH_CU128 = ImageNeeds("12.8", "525.60.13", ("sm_80", "sm_86", "sm_90", "sm_100", "sm_120"))
FACT_NODES = nodes_from_api(
    [
        api_node("new", "h100-node", ["GPU-h1"],
                 {DRIVER_LABEL: "550.54.15", CAPABILITY_LABEL: "9.0"}),
        api_node("old", "a100-node", ["GPU-a1"],
                 {DRIVER_LABEL: "470.82.01", CAPABILITY_LABEL: "8.0"}),
        api_node("mute", "unknown-node", ["GPU-u1"]),
    ]
)  # fmt: skip


def test_a_nodes_driver_and_cards_come_from_its_labels_or_its_engines():
    node = nodes_from_api([{**api_node("e", "e", ["GPU-e"]), "Description": {
        **api_node("e", "e", ["GPU-e"])["Description"],
        "Engine": {"Labels": {DRIVER_LABEL: "570.86.10"}},
    }}])[0]  # fmt: skip
    assert (node.driver, node.compute_capability) == ("570.86.10", "")
    assert (FACT_NODES[0].driver, FACT_NODES[0].compute_capability) == ("550.54.15", "9.0")


def test_nodes_that_cannot_run_the_image_are_kept_off_and_refused_only_when_all_are():
    unfit, sentence = image_fit(TORCH_CU128, FACT_NODES)
    assert (unfit, sentence) == (["old"], None)  # the node that does not say is not judged
    unfit, sentence = image_fit(TORCH_CU128, FACT_NODES, ["node.labels.gpu != x", "node.id == old"])
    assert unfit == ["old"]
    assert sentence == (
        "This image needs NVIDIA driver 525.60.13 or newer (CUDA 12.8); this host has 470.82.01."
    )
    two_old = nodes_from_api(
        [api_node(i, f"old-{i}", [f"GPU-{i}"], {DRIVER_LABEL: "470.82.01"}) for i in "ab"]
    )
    assert image_fit(TORCH_CU128, two_old)[1].startswith(
        "No GPU node of this cluster can run this image (old-a: This image needs NVIDIA driver"
    )


async def test_the_swarm_spawner_keeps_a_profiles_servers_off_the_nodes_that_cannot_run_it():
    from types import SimpleNamespace

    from spawner.swarm_edge.spawner import CUDASwarmSpawner

    raw = [api_node("new", "h", ["GPU-h1"], {DRIVER_LABEL: "550.54.15"}),
           api_node("old", "a", ["GPU-a1"], {DRIVER_LABEL: "470.82.01"})]  # fmt: skip

    async def docker(call, *args, **kwargs):
        assert call == "nodes"
        return raw

    async def needs(profile, probe_now):
        return TORCH_CU128

    stub = SimpleNamespace(docker=docker, _image_needs=needs, placement_constraints=[],
                           profile_constraints={})  # fmt: skip
    stub._node_refusal = lambda *args: CUDASwarmSpawner._node_refusal(stub, *args)
    (gpu,) = parse_profiles([{"slug": "gpu", "display_name": "GPU", "gpus": 1}])
    try:
        assert await CUDASwarmSpawner._image_refusal(stub, gpu) is None
        assert CUDASwarmSpawner._constraints(stub, "gpu") == ["node.id != old"]
        raw[0]["Spec"]["Labels"][DRIVER_LABEL] = "470.82.01"  # both too old now
        assert "No GPU node" in await CUDASwarmSpawner._image_refusal(stub, gpu)
    finally:
        CUDASwarmSpawner._unfit.clear()
