"""Schedules: cron ticks that start a template, a workflow or a goal run, on DBOS's
scheduler, so each tick runs once however many processes execute runs."""
