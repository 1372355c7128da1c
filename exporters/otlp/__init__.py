"""The OTLP codec (`codec`: columnar bodies, no Arrow) and the OTLP log exporter (`exporter`)."""

from .exporter import OtlpLogExporter

__all__ = ["OtlpLogExporter"]
