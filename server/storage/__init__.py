"""Storage adapters behind the Protocols of storage.base; only the composition root picks one."""
