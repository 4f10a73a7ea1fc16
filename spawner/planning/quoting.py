"""How values are quoted in messages to admins and users: bounded, never a traceback.

Shared by `profiles` (the admin's list) and `user_options` (a user's choice), so both
speak the same way about what they were given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def plural_s(n: int) -> str:
    return "" if n == 1 else "s"


def join_counts(counts: Iterable[int]) -> str:
    """(0, 1, 2) -> '0, 1 or 2'."""
    parts = [str(c) for c in counts]
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} or {parts[-1]}"


def short_int(n: int) -> str:
    # str() of a huge int is slow or refused (Python's 4300-digit limit): never format one.
    return str(n) if abs(n) < 10**12 else "a number far too large"


def quote(text: str, limit: int = 40) -> str:
    """A short, quoted excerpt of user text; control characters shown escaped."""
    excerpt = text if len(text) <= limit else text[:limit] + "…"
    return repr(excerpt)


def excerpt(value: object) -> str:
    """An admin value for a config message, bounded in length."""
    if isinstance(value, str):
        return quote(value, 60)
    if isinstance(value, int) and not isinstance(value, bool):
        return short_int(value)
    if isinstance(value, (float, bool, type(None))):
        return repr(value)
    return f"a {type(value).__name__}"


def admin_type(value: object) -> str:
    """An admin's wrong value, for a message: scalars quoted, containers by kind."""
    if isinstance(value, (str, int, float, type(None))):
        return excerpt(value)
    if isinstance(value, Mapping):
        return "a dict"
    if isinstance(value, (list, tuple, set, frozenset)):
        return f"a {type(value).__name__}"
    return f"a value of type {type(value).__name__}"


def user_type(value: object) -> str:
    """What a user sent, in JSON words, without echoing (possibly huge or deep) content."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, float):
        return f"the decimal number {value!r}" if abs(value) < 1e12 else "a decimal number"
    if isinstance(value, int):
        return short_int(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a value of type {type(value).__name__}"
