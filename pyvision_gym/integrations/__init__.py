"""Adapters that plug PyVision environments into other trainers (TRL, verl) and libraries (SB3)."""
