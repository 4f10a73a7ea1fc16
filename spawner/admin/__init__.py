"""The admin's commands: the GPU tables, account recovery, orphaned homes."""
