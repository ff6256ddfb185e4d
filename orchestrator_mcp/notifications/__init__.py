"""Outbound notifications: tell receivers (JSON webhooks, Slack) that a run waits for an
approval or has ended. The run event log is the outbox (`dispatcher`), each delivery a
durable DBOS workflow (`durable`), the bodies and signature in `messages`."""
