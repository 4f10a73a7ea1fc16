"""What a user may choose and what a start becomes: profiles, the form, the
choice, the start plan."""
