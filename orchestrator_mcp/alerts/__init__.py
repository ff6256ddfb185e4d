"""Alertmanager webhooks: receipt, routing rules, dedup, lifecycle, storm control."""
