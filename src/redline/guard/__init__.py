"""The guard: runtime tripwires in front of a model or an agent (proxy or in-process)."""
