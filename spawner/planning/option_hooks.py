"""JupyterHub's user-option hooks as cudaspawner fills them: pure wrappers, no spawner.

`form_options` is `options_from_form` (and so `options_from_query`): posted fields to
user_options, nothing else, as JupyterHub asks of it. `after` runs an admin's own
`apply_user_options` after cudaspawner's validation, which is the one place a choice is
checked.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from ..engine import failures
from .choice import UserOptionsError
from .form import options_from_form


def form_options(formdata: dict) -> dict:
    """Posted form or query fields -> user_options; a malformed field is an HTTP 400."""
    try:
        return options_from_form(formdata)
    except UserOptionsError as e:
        raise failures.user_error(400, str(e)) from None


def after(ours: Callable, admin_hook: object) -> Callable:
    """`ours`, then the admin's `apply_user_options` hook (sync or async) when one is set."""
    if admin_hook is None or admin_hook is ours:
        return ours
    if not callable(admin_hook):
        raise ValueError(
            "apply_user_options must be a callable: user options are {'profile', 'gpus'}, "
            "validated before your hook runs; a dict cannot apply them."
        )

    async def ours_then_admin_hook(spawner, user_options: dict) -> None:
        await ours(spawner, user_options)
        result = admin_hook(spawner, user_options)
        if inspect.isawaitable(result):
            await result

    return ours_then_admin_hook
