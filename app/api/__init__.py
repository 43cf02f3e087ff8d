"""The HTTP service: native refine API, OpenAI-compatible chat, health, metrics."""
