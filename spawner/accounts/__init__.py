"""Login and accounts: authenticators, the login throttle, user names, renames."""
