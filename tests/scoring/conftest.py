"""Scoring tests need no shared fixtures beyond `scoring_factories`; this file marks the folder for pytest."""
