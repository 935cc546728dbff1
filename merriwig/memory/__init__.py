"""Kernel memory management: the physical frame allocator and user address spaces."""
