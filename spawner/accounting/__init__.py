"""GPU-hours: every GPU hold recorded (who, which GPU, from when to when, how much of it idle,
why it ended), reports by user, group and profile, and budgets (issue 26)."""
