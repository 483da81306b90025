"""Slack notifications: an outbox of messages written with the events that cause them, sent
by the job worker through ``slack_sdk`` behind its own circuit breaker."""
