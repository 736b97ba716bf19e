"""A Coffer client in Python, with stubs generated from proto/ by protoc and
grpc_python_plugin (on PYTHONPATH), over grpcio's C core: no Coffer code.

It creates a key_value secret with a first version, adds a second version
while a WatchSecrets stream is open and sees it arrive, reads both versions
back, and asks for a secret that does not exist.

Environment:
  COFFER_GRPC_ADDRESS  host:port of the server's gRPC listener
  COFFER_TOKEN         the bearer token
  COFFER_PROJECT_ID    the project to write in
  COFFER_PAYLOAD_1     base64 of the first version's payload
  COFFER_PAYLOAD_2     base64 of the second version's payload

Prints one JSON object on stdout and exits 0 when every call answered as
expected; on an unexpected gRPC error prints {"error": {"code", "details"}}
and exits 2; on any other failure exits 1 with a message on stderr.
"""

import base64
import json
import os
import sys
import uuid
import zlib

import grpc
from coffer.secretmanager.v1 import resources_pb2
from coffer.secretmanager.v1 import secret_service_pb2 as pb
from coffer.secretmanager.v1 import secret_service_pb2_grpc

TIMEOUT_S = 60


def kind_name(event):
    return pb.WatchEventKind.Name(event.kind)


def main():
    address = os.environ["COFFER_GRPC_ADDRESS"]
    metadata = (("authorization", "Bearer " + os.environ["COFFER_TOKEN"]),)
    project_id = os.environ["COFFER_PROJECT_ID"]
    first = base64.b64decode(os.environ["COFFER_PAYLOAD_1"])
    second = base64.b64decode(os.environ["COFFER_PAYLOAD_2"])
    out = {"grpc_version": grpc.__version__}

    # A proxy set in the environment must not capture a loopback call.
    with grpc.insecure_channel(address, options=[("grpc.enable_http_proxy", 0)]) as channel:
        stub = secret_service_pb2_grpc.SecretServiceStub(channel)

        created = stub.CreateSecret(
            pb.CreateSecretRequest(
                project_id=project_id,
                path="/interop/python",
                name="db",
                type=resources_pb2.SECRET_TYPE_KEY_VALUE,
                first_version=pb.InitialVersion(data=first, data_crc32=zlib.crc32(first)),
            ),
            metadata=metadata,
            timeout=TIMEOUT_S,
        )
        secret_id = created.secret.id
        out["secret"] = {
            "id": secret_id,
            "path": created.secret.path,
            "name": created.secret.name,
            "type": resources_pb2.SecretType.Name(created.secret.type),
            "first_revision": created.first_version.revision,
        }

        # The stream starts with a heartbeat; the version added after it
        # arrives as VERSION_CREATED (heartbeats in between are skipped).
        request = pb.WatchSecretsRequest(
            project_id=project_id,
            selectors=[pb.WatchSelector(secret_id=secret_id)],
        )
        request.heartbeat_interval.seconds = 1
        stream = stub.WatchSecrets(request, metadata=metadata, timeout=TIMEOUT_S)
        try:
            start = next(stream)
            added = stub.CreateSecretVersion(
                pb.CreateSecretVersionRequest(
                    secret_id=secret_id, data=second, data_crc32=zlib.crc32(second)
                ),
                metadata=metadata,
                timeout=TIMEOUT_S,
            )
            heartbeats = 0
            for event in stream:
                if event.kind != pb.WATCH_EVENT_KIND_HEARTBEAT:
                    break
                heartbeats += 1
            else:
                raise RuntimeError("the watch stream ended before the new version arrived")
        finally:
            stream.cancel()
        out["added_revision"] = added.version.revision
        out["watch"] = {
            "start": {"kind": kind_name(start), "cursor": start.cursor},
            "heartbeats_before_event": heartbeats,
            "event": {
                "kind": kind_name(event),
                "cursor": event.cursor,
                "secret_id": event.secret_id,
                "path": event.path,
                "name": event.name,
                "revision": event.revision,
                "version_status": resources_pb2.VersionStatus.Name(event.version_status),
            },
        }

        out["access"] = {}
        for revision in ("latest_enabled", "1"):
            res = stub.AccessSecretVersion(
                pb.AccessSecretVersionRequest(secret_id=secret_id, revision=revision),
                metadata=metadata,
                timeout=TIMEOUT_S,
            )
            out["access"][revision] = {
                "revision": res.revision,
                "data": base64.b64encode(res.data).decode("ascii"),
                "crc32_matches": res.data_crc32 == zlib.crc32(res.data),
            }

        try:
            stub.AccessSecretVersion(
                pb.AccessSecretVersionRequest(secret_id=str(uuid.uuid4()), revision="latest"),
                metadata=metadata,
                timeout=TIMEOUT_S,
            )
            out["unknown_secret"] = "OK"
        except grpc.RpcError as err:
            out["unknown_secret"] = err.code().name

    print(json.dumps(out))


if __name__ == "__main__":
    try:
        main()
    except grpc.RpcError as err:
        print(json.dumps({"error": {"code": err.code().name, "details": err.details()}}))
        sys.exit(2)
