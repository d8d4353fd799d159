"""Sends one trace to phosphor through the OpenTelemetry Python SDK's Zipkin
JSON exporter (a real Zipkin v2 reporter).

Usage: zipkin_sdk.py ZIPKIN_ENDPOINT   (e.g. http://127.0.0.1:9411/api/v2/spans)
Prints the trace ID it sent, as JSON.
"""
import json
import sys

from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode


def main():
    provider = TracerProvider(resource=Resource.create({"service.name": "py-zipkin"}))
    provider.add_span_processor(SimpleSpanProcessor(ZipkinExporter(endpoint=sys.argv[1])))
    tracer = provider.get_tracer("phosphor-e2e")
    with tracer.start_as_current_span("checkout", kind=SpanKind.SERVER) as root:
        root.set_attribute("http.method", "POST")
        with tracer.start_as_current_span("reserve-stock", kind=SpanKind.CLIENT) as c:
            c.add_event("retry")
            c.set_status(Status(StatusCode.ERROR, "out of stock"))
        trace_id = format(root.get_span_context().trace_id, "032x")
    provider.shutdown()
    print(json.dumps({"traceId": trace_id}))


if __name__ == "__main__":
    main()
