"""YAML workflows (deterministic DAGs of tool, agent and approval steps, run durably) and
run templates (named goal runs with typed parameters)."""
