"""Advantage estimators and policy losses, each a small registered function (see registry.py)."""
