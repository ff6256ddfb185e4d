"""A small, general ops vocabulary for tool search (front/tool_search.py).

Two tables, both of everyday operations words, not of any catalog's tools:

* `SPELLINGS`: abbreviations and other spellings of one word, rewritten to one form in the
  tools' text and in queries alike (`k8s` -> `kubernetes`, `db` -> `database`). Lookup is
  by the case-folded word, or that word with its plural folded (`certs`), before stemming.
* `RELATED`: words a query may use for an operation whose tools say it otherwise (`bounce`
  -> `restart`, `ban` -> `block`). Only queries are expanded, and the added words count
  less than the query's own (tool_search.RELATED_WEIGHT).

Keep entries general knowledge a reviewer would accept, not a list of one test set's
misses; the held-out set of bench/catalog (queries_holdout.yaml) is what tells. That set
was written before this table, by the same hand, and some entries are words only it uses
(k8s, lb, ram, mute, nuke, unban, ...): tool_search's docstring gives its figures without
them too.
"""

from __future__ import annotations

SPELLINGS: dict[str, str] = {
    # platforms and products
    "k8s": "kubernetes", "kube": "kubernetes",
    "pg": "postgres", "postgresql": "postgres", "psql": "postgres",
    "tf": "terraform",
    "loadbalancer": "load balancer", "lb": "load balancer",
    "sg": "security group", "asg": "auto scaling group",
    # nouns
    "app": "application", "db": "database",
    "repo": "repository",
    "env": "environment",
    "cert": "certificate",
    "conf": "config", "cfg": "config", "configuration": "config",
    "ns": "namespace",
    "vm": "instance",
    "mem": "memory", "ram": "memory",
    "creds": "credential", "cred": "credential",
    "perm": "permission",
    "pw": "password", "passwd": "password",
    "svc": "service",
    "ssl": "tls",
    "msg": "message",
    "pr": "pull request", "mr": "merge request",
    "prod": "production",
    "vuln": "vulnerability",
    "2fa": "mfa",
    "expiry": "expire", "expiration": "expire",
    "utilization": "usage", "utilisation": "usage",
    # verbs
    "ack": "acknowledge", "acked": "acknowledge",
    "shutdown": "shut down",
}

RELATED: dict[str, tuple[str, ...]] = {
    # restarting and stopping
    "bounce": ("restart",), "cycle": ("restart",),
    "shut": ("stop", "poweroff"), "halt": ("stop",),
    "launch": ("start", "create"), "provision": ("create",), "spin": ("create", "start"),
    "open": ("create",), "declare": ("create",),
    "link": ("url",), "url": ("link",),
    "kick": ("trigger", "run", "start"),
    "rerun": ("retry", "run"),
    "abort": ("cancel",), "cancel": ("abort",),
    # removing
    "nuke": ("delete",), "wipe": ("delete", "flush"), "erase": ("delete",),
    "drop": ("delete",), "remove": ("delete",), "delete": ("remove",),
    # undoing
    "undo": ("rollback", "revert"), "revert": ("rollback", "undo"),
    "rollback": ("revert", "undo"),
    # alerting
    "mute": ("silence", "snooze"), "silence": ("mute", "snooze"),
    "snooze": ("silence", "mute"), "suppress": ("silence", "mute"),
    "alarm": ("alert",), "outage": ("incident",),
    "pager": ("page", "call"), "paging": ("page",),
    # blocking
    "ban": ("block", "deny"), "unban": ("unblock",),
    "blocklist": ("block", "deny"), "blacklist": ("block", "deny"),
    "denylist": ("block", "deny"),
    "allowlist": ("allow",), "whitelist": ("allow",),
    # finding
    "find": ("search",), "search": ("find",), "lookup": ("search", "find"),
    # size and hardware
    "big": ("size",), "large": ("size",),
    "processor": ("cpu",),
    "box": ("host", "instance"), "machine": ("host", "instance"), "server": ("host",),
    # replication roles
    "replica": ("standby", "secondary"), "standby": ("replica", "secondary"),
    "secondary": ("replica", "standby"), "follower": ("replica",),
    "primary": ("master", "leader"), "master": ("primary", "leader"),
    "leader": ("primary", "master"),
}
