"""Stand-ins for fast tests and offline trials: a fake dialogue engine, later local platforms."""
