"""The Docker engine shared with others: whose objects are whose, and its failures as sentences."""
