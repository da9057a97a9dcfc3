"""The OpenAI-compatible layer: hand-written codecs for the routes whose contract HttpRule cannot say."""
