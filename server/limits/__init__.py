"""Admission limits' shared state: leases and sliding windows, in process memory or in Redis."""
