"""Plugins the example suite needs: ``pytester`` runs a test suite inside a test."""

pytest_plugins = ["pytester"]
