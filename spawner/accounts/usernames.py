"""The one user-name policy: which names may sign up, be created by an admin, or log in.

A user name ends up in places with their own rules: the server's container name
(``jupyter-<escaped name>``, also a DNS name in its internal TLS certificate, so one DNS
label of at most 63 characters), its home volume (``cudaspawner-home-<escaped name>``), the
certificate's common name (``user-<name>``, at most 64 characters) and the hub's URLs and
HTML pages. A name is allowed when it is safe in all of them:

- lower-case letters a-z, digits 0-9, '.', '_' and '-', starting with a letter or digit;
- at most 32 characters;
- short enough once DockerSpawner spells '.', '_' and '-' as three characters each
  ('-2e', '-5f', '-2d') in the container name.

Pure functions of strings; the authenticator, the admin CLI and the tests all ask here.
"""

from __future__ import annotations

import string

MAX_LENGTH = 32
CONTAINER_PREFIX = "jupyter-"
# One DNS label: the container name is a DNS name in the server's certificate.
MAX_CONTAINER_NAME = 63
# The home volume's name template, as DockerSpawner fills it ({username}: the escaped name).
HOME_VOLUME_TEMPLATE = "cudaspawner-home-{username}"
CERT_CN_PREFIX = "user-"
MAX_CERT_CN = 64

_FIRST = set(string.ascii_lowercase + string.digits)
_ALLOWED = _FIRST | set("._-")
# DockerSpawner's escaping keeps only these; anything else becomes '-' + hex per byte.
_DOCKER_SAFE = set(string.ascii_lowercase + string.digits)

RULE = (
    "User names may use lower-case letters (a-z), digits (0-9), '.', '_' and '-', "
    f"must start with a letter or a digit, and be at most {MAX_LENGTH} characters long."
)

_NAMED = {
    " ": "a space",
    "\t": "a tab",
    "\n": "a line break",
    "\r": "a carriage return",
    "<": "'<'",
    ">": "'>'",
    '"': "a double quote",
    "'": "a single quote",
}


def docker_escape(name: str) -> str:
    """The name as DockerSpawner (14.x, default escaping) puts it in container names."""
    out = []
    for ch in name:
        if ch in _DOCKER_SAFE:
            out.append(ch)
        else:
            out.extend(f"-{b:02x}" for b in ch.encode("utf-8"))
    return "".join(out).lower()


def container_name(name: str) -> str:
    return CONTAINER_PREFIX + docker_escape(name)


def volume_name(name: str) -> str:
    return HOME_VOLUME_TEMPLATE.format(username=docker_escape(name))


def cert_common_name(name: str) -> str:
    return CERT_CN_PREFIX + name


def _describe(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    if ch.isprintable():
        return f"'{ch}'"
    return f"the control character U+{ord(ch):04X}"


def username_problem(name: str) -> str | None:
    """None when `name` (already normalized, i.e. lower-cased) is allowed, else a sentence
    saying what is wrong and what is allowed, fit to show to the person who typed it."""
    if not name:
        return f"Please enter a user name. {RULE}"
    bad = sorted({ch for ch in name if ch not in _ALLOWED}, key=name.index)
    if bad:
        what = ", ".join(_describe(ch) for ch in bad[:3])
        return f"A user name cannot contain {what}. {RULE}"
    if name[0] not in _FIRST:
        return f"A user name must start with a letter or a digit. {RULE}"
    if len(name) > MAX_LENGTH:
        return f"That user name has {len(name)} characters; at most {MAX_LENGTH} are allowed."
    if len(container_name(name)) > MAX_CONTAINER_NAME:
        return (
            "That user name has too many '.', '_' and '-' for its length: the server's "
            "container name spells each of them as three characters and must fit "
            f"{MAX_CONTAINER_NAME}. Use a shorter name or fewer of these characters."
        )
    return None


def is_allowed(name: str) -> bool:
    return username_problem(name) is None
