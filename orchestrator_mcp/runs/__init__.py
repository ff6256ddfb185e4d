"""Goal runs: the planner loop on DBOS, the runs table, approvals, budgets."""
