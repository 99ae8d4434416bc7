#!/opt/venv/bin/python
"""driftloop-grpc-health: exit 0 when a gRPC server reports SERVING on grpc.health.v1, 1 otherwise.

The images' HEALTHCHECK and, when the inference port speaks TLS, the Helm chart's probes run it
(Kubernetes' native gRPC probes cannot use TLS; grpc_health_probe is not shipped in the images).

    driftloop-grpc-health [--address 127.0.0.1:50051] [--service ""] [--timeout 3]
                          [--tls-ca FILE [--server-name NAME]]
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main() -> int:
    default_port = os.environ.get("DRIFTLOOP_INFERENCE_PORT", "50051")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--address", default=f"127.0.0.1:{default_port}")
    p.add_argument("--service", default="", help='health service name ("" = the whole server)')
    p.add_argument("--timeout", type=float, default=3.0)
    p.add_argument("--tls-ca", help="PEM CA bundle: connect with TLS and verify the server with it")
    p.add_argument("--server-name", help="name expected in the server certificate (TLS only)")
    a = p.parse_args()
    if a.tls_ca:
        with open(a.tls_ca, "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        options = [("grpc.ssl_target_name_override", a.server_name)] if a.server_name else []
        channel = grpc.secure_channel(a.address, creds, options=options)
    else:
        channel = grpc.insecure_channel(a.address)
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=a.service), timeout=a.timeout)
    except grpc.RpcError as exc:
        print(f"{a.address}: {exc.code().name} {exc.details()}", file=sys.stderr)
        return 1
    finally:
        channel.close()
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{a.address}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
