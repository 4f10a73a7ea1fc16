"""The default deployment's two cards, as a new admin and a user see them, on hosts of any size."""

from __future__ import annotations

import pytest

from spawner.planning.choice import validate_user_options
from spawner.planning.default_profiles import CPU_SLUG, CUDA_IMAGE, CUDA_SLUG, default_profiles
from spawner.planning.form import build_cards
from spawner.planning.profiles import parse_profiles


def _cards(gpus: int):
    profiles = parse_profiles(default_profiles(gpus))
    return {c.slug: c for c in build_cards(profiles, None, None, gpus)}


def test_host_without_gpus_shows_the_gpu_card_unavailable_with_its_reason():
    cards = _cards(0)
    assert list(cards) == [CPU_SLUG, CUDA_SLUG]
    cpu, cuda = cards[CPU_SLUG], cards[CUDA_SLUG]
    assert cpu.checked and not cpu.disabled
    assert cuda.disabled and not cuda.checked
    assert "no gpus" in (cuda.reason or "").lower()
    assert cuda.profile.display_name == "PyTorch 2.9 / CUDA 12.8"


@pytest.mark.parametrize("gpus", [1, 2, 8])
def test_gpu_host_preselects_the_cuda_card_with_one_to_n_gpus(gpus):
    cards = _cards(gpus)
    cuda = cards[CUDA_SLUG]
    assert cuda.checked and not cuda.disabled and not cards[CPU_SLUG].checked
    assert cuda.profile.gpu_choices == tuple(range(1, gpus + 1))
    assert cuda.profile.gpu_default == 1
    assert cuda.profile.image == CUDA_IMAGE


def test_an_empty_choice_starts_cpu_without_gpus_and_the_cuda_image_with_them():
    no_gpu = validate_user_options({}, parse_profiles(default_profiles(0)))
    assert (no_gpu.profile.slug, no_gpu.gpus, no_gpu.profile.image) == (CPU_SLUG, 0, None)
    four = validate_user_options({}, parse_profiles(default_profiles(4)))
    assert (four.profile.slug, four.gpus) == (CUDA_SLUG, 1)
    three = validate_user_options(
        {"profile": CUDA_SLUG, "gpus": 3}, parse_profiles(default_profiles(4))
    )
    assert three.gpus == 3


def test_the_site_images_are_used_as_given():
    digest = "registry.example/pytorch-cuda@sha256:" + "a" * 64
    cpu, cuda = parse_profiles(default_profiles(2, cpu_image="site/cpu:1", cuda_image=digest))
    assert (cpu.image, cuda.image) == ("site/cpu:1", digest)


def test_a_negative_gpu_count_is_refused():
    with pytest.raises(ValueError, match="-1 GPUs"):
        default_profiles(-1)
