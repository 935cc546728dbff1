"""net/wire package."""
