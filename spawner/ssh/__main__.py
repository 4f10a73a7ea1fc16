"""`python -m spawner.ssh`: the SSH service (the hub starts it; see configure_ssh)."""

from .app import main

main()
