"""Registers the ``slow`` marker used by the SmolLM2 conversion test (run with RSPO_SLOW=1)."""


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long test (download/conversion); runs only with RSPO_SLOW=1")
