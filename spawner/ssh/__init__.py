"""SSH into your running server through the hub: gateway, key store and keys page.

`configure_ssh(c, data_dir, hub_url)` in jupyterhub_config.py adds it as a managed hub
service. See docs/ssh.md.
"""

from .hub_config import configure_ssh

__all__ = ["configure_ssh"]
