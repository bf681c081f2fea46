"""Durable Functions orchestrations and activities: the registered hosts of reddytalk.workflows."""
