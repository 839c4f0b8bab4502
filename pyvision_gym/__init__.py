"""pyvision-gym: agentic vision RL as Gymnasium environments."""

__version__ = "0.1.0"
