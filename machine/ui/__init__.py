"""machine/ui package."""
