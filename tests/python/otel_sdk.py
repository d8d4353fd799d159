"""Sends traces to phosphor through the real OpenTelemetry Python SDK.

Usage: otel_sdk.py GRPC_ENDPOINT HTTP_ENDPOINT

For each exporter (OTLP/gRPC, OTLP/HTTP protobuf with gzip, then OTLP/gRPC
with gzip) it sends one trace: a SERVER root with attributes and an event,
two children (one with an error status and a recorded exception) and a
grandchild. It prints one JSON line describing what it sent, for the test
to compare with what phosphor stores.
"""
import json
import sys

import grpc

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode


def send(exporter, service):
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "deployment.environment": "test"})
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("phosphor-e2e", "1.0")
    with tracer.start_as_current_span("GET /payments", kind=SpanKind.SERVER) as root:
        root.set_attribute("http.method", "GET")
        root.set_attribute("http.status_code", 500)
        root.set_attribute("retry", True)
        root.set_attribute("ratio", 0.25)
        root.add_event("auth checked", {"user.id": "u-42"})
        with tracer.start_as_current_span("load-account", kind=SpanKind.CLIENT) as c1:
            c1.set_attribute("db.system", "rocksdb")
            with tracer.start_as_current_span("decode") as g:
                g.set_attribute("bytes", 512)
        with tracer.start_as_current_span("charge-card") as c2:
            c2.record_exception(ValueError("card declined"))
            c2.set_status(Status(StatusCode.ERROR, "card declined"))
        trace_id = format(root.get_span_context().trace_id, "032x")
        root_id = format(root.get_span_context().span_id, "016x")
    provider.shutdown()
    return {"service": service, "traceId": trace_id, "rootSpanId": root_id}


def main():
    grpc_endpoint, http_endpoint = sys.argv[1], sys.argv[2]
    sent = [
        send(GrpcExporter(endpoint=grpc_endpoint, insecure=True), "py-grpc"),
        send(
            HttpExporter(endpoint=http_endpoint + "/v1/traces", compression=Compression.Gzip),
            "py-http",
        ),
        send(
            GrpcExporter(endpoint=grpc_endpoint, insecure=True, compression=grpc.Compression.Gzip),
            "py-grpc-gzip",
        ),
    ]
    print(json.dumps(sent))


if __name__ == "__main__":
    main()
