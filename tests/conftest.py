"""Root fixtures: the real components (tests/services.py) for every test directory."""

pytest_plugins = ["tests.services"]
