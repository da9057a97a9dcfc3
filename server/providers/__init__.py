"""Upstream providers: one adapter per wire format behind providers.base."""
