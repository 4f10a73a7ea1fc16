"""Sizes as text: JupyterHub's, Docker's and the environment's spellings, read in one place."""

from __future__ import annotations

import pytest

from spawner.sizes import DOCKER, ENVIRONMENT, JUPYTERHUB, read_size, size_bytes


@pytest.mark.parametrize(
    ("text", "spelling", "expected"),
    [
        ("8G", JUPYTERHUB, 8 * 1024**3),
        ("1.5T", JUPYTERHUB, int(1.5 * 1024**4)),
        ("2g", DOCKER, 2 * 1024**3),
        ("512mb", DOCKER, 512 * 1024**2),
        ("100b", DOCKER, 100),
        ("100", DOCKER, 100),
        ("4 GB", ENVIRONMENT, 4 * 1024**3),
        ("1024", ENVIRONMENT, 1024),
    ],
)
def test_sizes_in_their_spelling_become_bytes(text, spelling, expected):
    assert size_bytes(text, spelling) == expected


@pytest.mark.parametrize(
    ("text", "spelling"),
    [
        ("8g", JUPYTERHUB),  # JupyterHub's mem_limit takes upper-case units only
        ("8", JUPYTERHUB),  # and a unit
        ("8GB", JUPYTERHUB),
        ("1t", DOCKER),  # Docker's sizes stop at g
        ("8X", ENVIRONMENT),
        ("eight", ENVIRONMENT),
        (8, JUPYTERHUB),  # a number is not text to read (size_bytes takes ints as bytes)
    ],
)
def test_other_spellings_are_not_sizes(text, spelling):
    assert read_size(text, spelling) is None


def test_an_int_is_bytes_and_a_bad_text_is_a_value_error():
    assert size_bytes(4096, JUPYTERHUB) == 4096 and size_bytes(None, DOCKER) is None
    with pytest.raises(ValueError, match="is not a size"):
        size_bytes("lots", ENVIRONMENT)
