"""One table of relay cases run through every door: REST (openai SDK, raw HTTP), gRPC and the TypeScript client."""
