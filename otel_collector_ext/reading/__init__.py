"""Read-back internals: file listing, parallel fetching, the Dask engine, profiles, reports.

The public API is `otel_collector_ext.reading.readback` (`load`, `join_inputs_outputs`).
"""
