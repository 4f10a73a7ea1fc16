"""`python -m spawner.ssh`: the SSH service (the hub starts it; see configure_ssh)."""

from ..services.lifetime import end_with_parent
from .app import main

end_with_parent()  # the hub started us: a hub killed outright takes the gateway with it
main()
