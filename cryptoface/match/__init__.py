"""Encrypted matching: polynomial approximations and their evaluation (issue 9)."""
