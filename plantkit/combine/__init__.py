"""Combinations of stored experts: functions from arrays to arrays."""
