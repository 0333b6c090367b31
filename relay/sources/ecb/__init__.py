"""The ecb source: its client, its SQL and its relay-in."""
