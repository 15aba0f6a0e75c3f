"""Tests of the ASGI integration: the middleware, a request's Background, FastAPI."""
