"""Fires relay-in calls on a schedule (the firing client and clock come in the scheduler issue)."""
