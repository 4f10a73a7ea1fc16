"""A managed service ends with the hub that started it.

JupyterHub starts its managed services (the SSH gateway, GPU operations) in sessions of
their own and stops them on a clean exit. A hub killed outright (`kill -9`, the OOM
killer) stops nothing: its services would live on with its old token, and the SSH gateway
would keep its port, so the restarted hub's gateway could not listen there.
"""

from __future__ import annotations

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def end_with_parent(sig: signal.Signals = signal.SIGTERM) -> bool:
    """Have the kernel send `sig` to this process when its parent exits (Linux).

    Returns False where that cannot be asked (not Linux, no libc); the service then runs on
    as before. A parent that died before the request took is caught by its PID changing.
    """
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent:
        os.kill(os.getpid(), sig)
    return True
