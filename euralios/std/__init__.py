"""euralios/std package."""
