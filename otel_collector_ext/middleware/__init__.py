"""HTTP payload logging: the `request` and `response` collections of a scoring server.

    from otel_collector_ext.middleware import ASGIMiddleware, WSGIMiddleware
    app.add_middleware(ASGIMiddleware)            # FastAPI / Starlette
    app.wsgi_app = WSGIMiddleware(app.wsgi_app)   # Flask

Each request gets a correlation id (a valid `x-request-id`, else the W3C
`traceparent`, else a new UUID), echoed in the response's `x-request-id` and current
while the request is served, so `Collector.collect()` calls in the handler share it.
What is recorded is set in configuration (`data_collector.collections.request` /
`response` and `data_collector.request_logging`); see docs/payload-logging.md.
"""

from .asgi import ASGIMiddleware
from .wsgi import WSGIMiddleware

__all__ = ["ASGIMiddleware", "WSGIMiddleware"]
