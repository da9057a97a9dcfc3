"""Benchmarks of Tollgate's overhead, throughput and stream capacity against a direct call (issue 5)."""
