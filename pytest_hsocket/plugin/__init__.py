"""The pytest11 entry point: fixtures and hooks of pytest-hsocket (filled in by the plugin)."""
