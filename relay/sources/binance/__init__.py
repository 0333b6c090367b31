"""The binance source: its client, its SQL and its relay-in."""
