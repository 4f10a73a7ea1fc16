"""The hub's host: deployment set-up, the firewall, internal TLS, origins and headers."""
