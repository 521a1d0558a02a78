"""The reference delivery engine: the platform's assignment endpoint, for local runs and tests."""
