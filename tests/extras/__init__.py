"""Tests of the extras: OpenTelemetry, Prometheus, the status page, the testing helpers."""
