"""The domain: accounts, sessions, tokens and money, free of gRPC, HTTP, database and Redis modules."""
