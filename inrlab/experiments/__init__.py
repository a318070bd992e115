"""Paper reproductions, each driven by one TOML file in ``configs/`` (``inrlab repro FILE``)."""
