"""Schedules: pipelines run on a cron schedule, with a webhook after every run (docs/architecture.md §2).

One idea per module: `cron.py` (slots of a cron expression, croniter), `model.py` (a schedule and its checks),
`store.py` (the workspace's `.aidevops/schedules.json`, edited under a file lock), `notify.py` (the webhook's
JSON, Slack-compatible or generic), `scheduler.py` (what is due, starting it as a background job, recording how
it ended) and `background.py` (the scheduler thread the Jupyter server extension starts).
"""
