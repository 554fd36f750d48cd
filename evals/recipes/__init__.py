"""Reproduction recipes: scripts that rebuild a published-style comparison from data files."""
