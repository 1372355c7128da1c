"""`AvroLogExporter` at its documented path; it lives in `exporters.avro.exporter`."""

from .avro.exporter import AvroLogExporter

__all__ = ["AvroLogExporter"]
