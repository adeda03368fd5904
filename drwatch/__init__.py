"""drwatch exporter: AWS backup/DR observations served as Prometheus metrics."""

__version__ = "0.1.0"
