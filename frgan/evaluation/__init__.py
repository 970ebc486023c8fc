"""Protocols of frgan.evaluate beyond the per-frame table: the expression analysis."""
