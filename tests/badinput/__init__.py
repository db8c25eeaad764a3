"""The bad-input corpus (issue 11): cases.toml is the data, runner.py runs it."""
