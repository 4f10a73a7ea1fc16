"""The GPU table and its allocator: inventory, claims, labels, the host's and the
cluster's tables."""
