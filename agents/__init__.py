"""Agents and training."""
