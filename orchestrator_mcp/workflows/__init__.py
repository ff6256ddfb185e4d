"""YAML workflows: deterministic DAGs of tool, agent and approval steps, run durably."""
