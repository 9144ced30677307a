"""Smoke tests for a deployed stack (pytest-testinfra); see tests/smoke/conftest.py and the README."""
