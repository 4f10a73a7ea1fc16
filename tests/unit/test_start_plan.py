"""The start plan: one pure function decides everything a container gets, for each profile shape."""

from __future__ import annotations

from dataclasses import replace

import pytest

from spawner.docker_edge import container_spec as docker_objects
from spawner.gpu.allocator import Gpu
from spawner.gpu.labels import (
    GPUS_LABEL,
    IMAGE_DIGEST_LABEL,
    IMAGE_LABEL,
    PLAN_LABEL,
    PROFILE_LABEL,
    SERVER_LABEL,
    USER_LABEL,
)
from spawner.planning.choice import validate_user_options
from spawner.planning.hardening import Hardening
from spawner.planning.plan import (
    ImageFacts,
    PlanRefused,
    SiteSettings,
    UnsafeMount,
    image_facts,
    make_plan,
    memory_bytes,
)
from spawner.planning.profiles import parse_profiles, site_profiles

PROFILES = parse_profiles(
    [
        {"slug": "cpu", "display_name": "CPU", "default": True},
        {
            "slug": "one",
            "display_name": "One GPU",
            "image": "cudaspawner/pytorch-cuda@sha256:" + "a" * 64,
            "gpus": 1,
            "mem_limit": "32G",
            "cpu_limit": 8,
            "shm_size": "8g",
            "environment": {"TEAM": "vision"},
            "volumes": {"/data/imagenet": {"bind": "/data", "mode": "ro"}},
        },
        {"slug": "choice", "display_name": "1 to 4 GPUs", "gpus": {"choices": [1, 2, 4]}},
    ]
)
IMAGE = ImageFacts(
    name="cudaspawner/cpu:latest",
    digest="sha256:" + "c" * 64,
    user="",
    command=("jupyterhub-singleuser",),
)
SITE = SiteSettings(mem_limit=4 * 1024**3, cpu_limit=2.0)
GPUS = (Gpu(0, "GPU-aaaa"), Gpu(1, "GPU-bbbb"), Gpu(2, "GPU-cccc"))


def plan_for(options: dict, gpus=(), site: SiteSettings = SITE, image: ImageFacts = IMAGE, **kw):
    choice = validate_user_options(options, PROFILES)
    if choice.profile.image:
        image = replace(image, name=choice.profile.image)
    return make_plan(
        choice,
        user_name="alice",
        server_key="alice",
        site=site,
        image=image,
        gpus=gpus,
        since="2026-01-01T00:00:00+00:00" if gpus else "",
        **kw,
    )


def test_cpu_profile_runs_the_site_image_confined_with_the_site_limits_and_no_gpu():
    plan = plan_for({})
    assert plan.image == "cudaspawner/cpu:latest"
    assert plan.user == "1000:100"  # the image would run as root
    assert plan.command == ("jupyterhub-singleuser",)
    assert plan.mem_limit == 4 * 1024**3 and plan.cpu_limit == 2.0
    assert plan.environment["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert plan.environment["MEM_LIMIT"] == str(4 * 1024**3)
    assert plan.environment["CPU_LIMIT"] == "2"
    assert plan.gpu_ids == ()
    assert GPUS_LABEL not in plan.labels
    assert plan.labels[USER_LABEL] == "alice" and plan.labels[PROFILE_LABEL] == "cpu"
    assert plan.mounts == {"cudaspawner-home-{username}": "/home/jovyan"}
    host = docker_objects.host_config(plan, {})
    assert host["cap_drop"] == ["ALL"] and host["security_opt"] == ["no-new-privileges"]
    assert "device_requests" not in host and "runtime" not in host


def test_fixed_gpu_profile_gets_its_image_by_digest_limits_env_volumes_and_gpu():
    plan = plan_for({"profile": "one"}, gpus=GPUS[:1])
    assert plan.image.startswith("cudaspawner/pytorch-cuda@sha256:")
    assert plan.environment["CUDASPAWNER_IMAGE"] == plan.image
    assert plan.labels[IMAGE_LABEL] == plan.image
    assert plan.labels[IMAGE_DIGEST_LABEL] == plan.environment["CUDASPAWNER_IMAGE_DIGEST"]
    assert plan.mem_limit == 32 * 1024**3 and plan.cpu_limit == 8.0  # the profile's, not the site's
    assert plan.hardening.shm_size == "8g"
    assert plan.environment["TEAM"] == "vision"
    assert plan.mounts["/data/imagenet"] == {"bind": "/data", "mode": "ro"}
    assert plan.gpu_ids == ("GPU-aaaa",)
    assert plan.environment["NVIDIA_VISIBLE_DEVICES"] == "GPU-aaaa"
    assert plan.labels[GPUS_LABEL] == "GPU-aaaa"


def test_gpu_choice_profile_gets_exactly_the_reserved_gpus_in_order():
    plan = plan_for({"profile": "choice", "gpus": 2}, gpus=(GPUS[2], GPUS[0]))
    assert plan.gpu_ids == ("GPU-cccc", "GPU-aaaa")
    assert plan.environment["NVIDIA_VISIBLE_DEVICES"] == "GPU-cccc,GPU-aaaa"
    assert plan.labels[GPUS_LABEL] == "GPU-cccc,GPU-aaaa"
    assert plan.labels[SERVER_LABEL] == "alice"


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("device_requests", {"Driver": "", "DeviceIDs": ["GPU-aaaa", "GPU-bbbb"]}),
        (
            "cdi",
            {"Driver": "cdi", "DeviceIDs": ["nvidia.com/gpu=GPU-aaaa", "nvidia.com/gpu=GPU-bbbb"]},
        ),
        ("runtime", None),
    ],
)
def test_each_request_style_gives_docker_exactly_the_planned_gpus(style, expected):
    site = replace(SITE, gpu_request_style=style)
    plan = plan_for({"profile": "choice", "gpus": 2}, gpus=GPUS[:2], site=site)
    # An admin's device request never reaches the container: the plan's GPUs are ours alone.
    admin = {"device_requests": [{"Driver": "nvidia", "Count": -1}], "runtime": "runc"}
    host = docker_objects.host_config(plan, admin)
    assert plan.environment["NVIDIA_VISIBLE_DEVICES"] == "GPU-aaaa,GPU-bbbb"
    if expected is None:
        assert host["runtime"] == "nvidia" and "device_requests" not in host
    else:
        (request,) = host["device_requests"]
        assert {k: request[k] for k in expected} == expected
        assert host["runtime"] == "runc"  # an admin's runtime of their own is kept


def test_internal_tls_address_is_in_the_plan_and_changes_its_fingerprint():
    a = plan_for({}, address="172.30.0.5")
    b = plan_for({}, address="172.30.0.6")
    assert a.address == "172.30.0.5"
    assert a.fingerprint != b.fingerprint


def test_same_inputs_give_the_same_fingerprint_whatever_the_time_of_reservation():
    one = plan_for({"profile": "one"}, gpus=GPUS[:1])
    again = make_plan(
        validate_user_options({"profile": "one"}, PROFILES),
        user_name="alice",
        server_key="alice",
        site=SITE,
        image=replace(IMAGE, name=one.image),
        gpus=GPUS[:1],
        since="2027-06-01T12:00:00+00:00",
    )
    assert again.labels[PLAN_LABEL] == one.labels[PLAN_LABEL]


@pytest.mark.parametrize(
    "change",
    [
        {"gpus": GPUS[1:2]},  # another GPU
        {"image": replace(IMAGE, digest="sha256:" + "d" * 64)},  # the image was rebuilt
        {"site": replace(SITE, mem_limit=8 * 1024**3)},  # new site limits (a CPU profile)
    ],
)
def test_a_plan_that_differs_in_gpus_image_or_limits_has_another_fingerprint(change):
    options = {"profile": "one"} if "gpus" in change else {}
    base = plan_for(options, gpus=GPUS[:1] if options else ())
    changed = plan_for(options, **{"gpus": GPUS[:1] if options else (), **change})
    assert changed.fingerprint != base.fingerprint


def test_root_is_refused_unless_allowed():
    with pytest.raises(PlanRefused, match="allow_root"):
        plan_for({}, site=replace(SITE, container_user="0:0"))
    assert plan_for({}, site=replace(SITE, container_user="0", allow_root=True)).user == "0"


def test_the_image_user_is_kept_when_it_is_not_root():
    assert plan_for({}, image=replace(IMAGE, user="jovyan")).user == "jovyan"


def test_the_site_command_replaces_the_images():
    assert plan_for({}, site=replace(SITE, cmd=("start.sh",))).command == ("start.sh",)


def test_a_docker_socket_mount_is_refused_wherever_it_comes_from():
    site = replace(SITE, volumes={"/var/run/docker.sock": "/var/run/docker.sock"})
    with pytest.raises(UnsafeMount):
        plan_for({}, site=site)


def test_relaxed_site_hardening_reaches_docker_as_the_admin_set_it():
    site = replace(SITE, hardening=Hardening(cap_drop=(), no_new_privileges=False, pids_limit=None))
    host = docker_objects.host_config(plan_for({}, site=site), {})
    assert "cap_drop" not in host and "security_opt" not in host and "pids_limit" not in host


def test_limits_reach_docker_as_bytes_and_cpu_quota():
    host = docker_objects.host_config(plan_for({"profile": "one"}, gpus=GPUS[:1]), {})
    assert host["mem_limit"] == 32 * 1024**3
    assert (host["cpu_period"], host["cpu_quota"]) == (100_000, 800_000)


def test_labels_of_both_sides_reach_docker_ours_winning():
    plan = plan_for({"profile": "one"}, gpus=GPUS[:1])
    admin = {"labels": {"team": "x", GPUS_LABEL: "GPU-forged"}}
    kwargs = docker_objects.create_kwargs(plan, admin)
    assert kwargs["labels"]["team"] == "x"
    assert kwargs["labels"][GPUS_LABEL] == "GPU-aaaa"
    assert kwargs["user"] == plan.user


@pytest.mark.parametrize(
    ("name", "inspected", "digest"),
    [
        (
            "reg:5000/team/img:1",
            {"Id": "sha256:1", "RepoDigests": ["other/img@sha256:2", "reg:5000/team/img@sha256:3"]},
            "reg:5000/team/img@sha256:3",
        ),
        ("cudaspawner/cpu:latest", {"Id": "sha256:9", "RepoDigests": []}, "sha256:9"),
    ],
)
def test_image_digest_is_the_registry_digest_of_that_repository_else_the_image_id(
    name, inspected, digest
):
    assert image_facts(name, inspected).digest == digest


@pytest.mark.parametrize(("value", "expected"), [("8G", 8 * 1024**3), ("1.5K", 1536), (7, 7)])
def test_memory_sizes_are_bytes(value, expected):
    assert memory_bytes(value) == expected


def test_allowed_images_become_one_profile_each_after_the_site_default():
    profiles = site_profiles([], {"4.0": "singleuser:4.0", "4": "singleuser:4"}, "site:1")
    assert [(p.slug, p.image, p.default) for p in profiles] == [
        ("default", "site:1", False),
        ("4-0", "singleuser:4.0", False),
        ("4", "singleuser:4", False),
    ]
    choice = validate_user_options({"image": "4"}, profiles, images={"4": "singleuser:4"})
    assert choice.profile.image == "singleuser:4"
    assert validate_user_options({}, profiles).profile.image == "site:1"
