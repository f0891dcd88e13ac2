"""Test configuration: database fixtures live in the plugin module tests/fixtures/db.py."""

pytest_plugins = ["tests.fixtures.db"]
