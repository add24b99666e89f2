"""Readers: one module per input format. Each returns good rows plus a reject count."""
