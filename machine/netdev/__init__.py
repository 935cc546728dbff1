"""machine/netdev package."""
