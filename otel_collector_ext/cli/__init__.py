"""The command line; `main` is the console-script entry point (`otel_collector_ext.cli:main`)."""

from .main import main

__all__ = ["main"]
