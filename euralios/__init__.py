"""euralios package."""
