"""The protobuf messages pyd exchanges with BuildKit clients, as tables written from BuildKit's .proto files
(api/services/control/control.proto, api/types/worker.proto, solver/pb/ops.proto, session/filesync).
Only the fields pyd reads or writes are listed; the decoder skips the others."""
from __future__ import annotations

from pyd.daemon.buildkit.protobuf import TIMESTAMP, Field, Map, Message

# ---- moby.buildkit.v1.types (worker.proto) and pb (ops.proto)
PLATFORM = Message("pb.Platform",
                   Field(1, "Architecture", "string"), Field(2, "OS", "string"), Field(3, "Variant", "string"),
                   Field(4, "OSVersion", "string"), Field(5, "OSFeatures", "string", repeated=True))
GC_POLICY = Message("moby.buildkit.v1.types.GCPolicy",
                    Field(1, "all", "bool"), Field(2, "keepDuration", "int64"), Field(3, "keepBytes", "int64"),
                    Field(4, "filters", "string", repeated=True))
BUILDKIT_VERSION = Message("moby.buildkit.v1.types.BuildkitVersion",
                           Field(1, "package", "string"), Field(2, "version", "string"), Field(3, "revision", "string"))
WORKER_RECORD = Message("moby.buildkit.v1.types.WorkerRecord",
                        Field(1, "ID", "string"), Field(2, "Labels", Map("string", "string")),
                        Field(3, "platforms", PLATFORM, repeated=True), Field(4, "GCPolicy", GC_POLICY, repeated=True),
                        Field(5, "BuildkitVersion", BUILDKIT_VERSION))

# ---- moby.buildkit.v1 (control.proto)
LIST_WORKERS_REQUEST = Message("moby.buildkit.v1.ListWorkersRequest", Field(1, "filter", "string", repeated=True))
LIST_WORKERS_RESPONSE = Message("moby.buildkit.v1.ListWorkersResponse",
                                Field(1, "record", WORKER_RECORD, repeated=True))
INFO_REQUEST = Message("moby.buildkit.v1.InfoRequest")
INFO_RESPONSE = Message("moby.buildkit.v1.InfoResponse", Field(1, "buildkitVersion", BUILDKIT_VERSION))
DISK_USAGE_REQUEST = Message("moby.buildkit.v1.DiskUsageRequest", Field(1, "filter", "string", repeated=True))
USAGE_RECORD = Message("moby.buildkit.v1.UsageRecord",
                       Field(1, "ID", "string"), Field(2, "Mutable", "bool"), Field(3, "InUse", "bool"),
                       Field(4, "Size", "int64"), Field(5, "Parent", "string"), Field(6, "CreatedAt", TIMESTAMP),
                       Field(7, "LastUsedAt", TIMESTAMP), Field(8, "UsageCount", "int64"),
                       Field(9, "Description", "string"), Field(10, "RecordType", "string"), Field(11, "Shared", "bool"),
                       Field(12, "Parents", "string", repeated=True))
DISK_USAGE_RESPONSE = Message("moby.buildkit.v1.DiskUsageResponse", Field(1, "record", USAGE_RECORD, repeated=True))
PRUNE_REQUEST = Message("moby.buildkit.v1.PruneRequest",
                        Field(1, "filter", "string", repeated=True), Field(2, "all", "bool"),
                        Field(3, "keepDuration", "int64"), Field(4, "keepBytes", "int64"))
EXPORTER = Message("moby.buildkit.v1.Exporter", Field(1, "Type", "string"), Field(2, "Attrs", Map("string", "string")))
CACHE_OPTIONS_ENTRY = Message("moby.buildkit.v1.CacheOptionsEntry",
                              Field(1, "Type", "string"), Field(2, "Attrs", Map("string", "string")))
CACHE_OPTIONS = Message("moby.buildkit.v1.CacheOptions",
                        Field(1, "ExportRefDeprecated", "string"),
                        Field(2, "ImportRefsDeprecated", "string", repeated=True),
                        Field(4, "Exports", CACHE_OPTIONS_ENTRY, repeated=True),
                        Field(5, "Imports", CACHE_OPTIONS_ENTRY, repeated=True))
SOLVE_REQUEST = Message("moby.buildkit.v1.SolveRequest",
                        Field(1, "Ref", "string"), Field(2, "Definition", "bytes"),
                        Field(3, "ExporterDeprecated", "string"),
                        Field(4, "ExporterAttrsDeprecated", Map("string", "string")), Field(5, "Session", "string"),
                        Field(6, "Frontend", "string"), Field(7, "FrontendAttrs", Map("string", "string")),
                        Field(8, "Cache", CACHE_OPTIONS), Field(9, "Entitlements", "string", repeated=True), Field(11, "Internal", "bool"),
                        Field(13, "Exporters", EXPORTER, repeated=True))
SOLVE_RESPONSE = Message("moby.buildkit.v1.SolveResponse", Field(1, "ExporterResponse", Map("string", "string")))
STATUS_REQUEST = Message("moby.buildkit.v1.StatusRequest", Field(1, "Ref", "string"))
VERTEX = Message("moby.buildkit.v1.Vertex",
                 Field(1, "digest", "string"), Field(2, "inputs", "string", repeated=True), Field(3, "name", "string"),
                 Field(4, "cached", "bool"), Field(5, "started", TIMESTAMP), Field(6, "completed", TIMESTAMP),
                 Field(7, "error", "string"))
VERTEX_STATUS = Message("moby.buildkit.v1.VertexStatus",
                        Field(1, "ID", "string"), Field(2, "vertex", "string"), Field(3, "name", "string"),
                        Field(4, "current", "int64"), Field(5, "total", "int64"), Field(6, "timestamp", TIMESTAMP),
                        Field(7, "started", TIMESTAMP), Field(8, "completed", TIMESTAMP))
VERTEX_LOG = Message("moby.buildkit.v1.VertexLog",
                     Field(1, "vertex", "string"), Field(2, "timestamp", TIMESTAMP), Field(3, "stream", "int64"),
                     Field(4, "msg", "bytes"))
STATUS_RESPONSE = Message("moby.buildkit.v1.StatusResponse",
                          Field(1, "vertexes", VERTEX, repeated=True), Field(2, "statuses", VERTEX_STATUS, repeated=True),
                          Field(3, "logs", VERTEX_LOG, repeated=True))
BYTES_MESSAGE = Message("moby.buildkit.v1.BytesMessage", Field(1, "data", "bytes"))

# ---- fsutil.types (the FileSync stream's packets, for DiffCopy)
STAT = Message("fsutil.types.Stat",
               Field(1, "path", "string"), Field(2, "mode", "uint32"), Field(3, "uid", "uint32"),
               Field(4, "gid", "uint32"), Field(5, "size", "int64"), Field(6, "modTime", "int64"),
               Field(7, "linkname", "string"), Field(8, "devmajor", "int64"), Field(9, "devminor", "int64"),
               Field(10, "xattrs", Map("string", "bytes")))
PACKET = Message("fsutil.types.Packet",
                 Field(1, "type", "enum"), Field(2, "stat", STAT), Field(3, "ID", "uint32"), Field(4, "data", "bytes"))
PACKET_STAT, PACKET_REQ, PACKET_DATA, PACKET_FIN, PACKET_ERR = 0, 1, 2, 3, 4

# ---- moby.buildkit.v1.frontend (frontend/gateway/pb/gateway.proto): the LLBBridge a client-side gateway
# (buildx's build function) calls during a Solve without a frontend
API_CAP = Message("moby.buildkit.v1.apicaps.APICap", Field(1, "ID", "string"), Field(2, "Enabled", "bool"))
PONG_RESPONSE = Message("moby.buildkit.v1.frontend.PongResponse",
                        Field(1, "FrontendAPICaps", API_CAP, repeated=True), Field(2, "LLBCaps", API_CAP, repeated=True),
                        Field(3, "Workers", WORKER_RECORD, repeated=True))
GATEWAY_SOLVE_REQUEST = Message("moby.buildkit.v1.frontend.SolveRequest",
                                Field(2, "Frontend", "string"), Field(3, "FrontendOpt", Map("string", "string")),
                                Field(10, "Final", "bool"),
                                Field(12, "CacheImports", CACHE_OPTIONS_ENTRY, repeated=True),
                                Field(14, "Evaluate", "bool"))
GATEWAY_REF = Message("moby.buildkit.v1.frontend.Ref", Field(1, "id", "string"))
GATEWAY_RESULT = Message("moby.buildkit.v1.frontend.Result",
                         Field(1, "refDeprecated", "string"), Field(3, "ref", GATEWAY_REF),
                         Field(10, "metadata", Map("string", "bytes")))
GATEWAY_SOLVE_RESPONSE = Message("moby.buildkit.v1.frontend.SolveResponse", Field(1, "ref", "string"))
RPC_STATUS = Message("google.rpc.Status", Field(1, "code", "int32"), Field(2, "message", "string"))
RETURN_REQUEST = Message("moby.buildkit.v1.frontend.ReturnRequest",
                         Field(1, "result", GATEWAY_RESULT), Field(2, "error", RPC_STATUS))
RETURN_RESPONSE = Message("moby.buildkit.v1.frontend.ReturnResponse")

# ---- moby.buildkit.secrets.v1 (session/secrets/secrets.proto)
GET_SECRET_REQUEST = Message("moby.buildkit.secrets.v1.GetSecretRequest",
                             Field(1, "ID", "string"), Field(2, "annotations", Map("string", "string")))
GET_SECRET_RESPONSE = Message("moby.buildkit.secrets.v1.GetSecretResponse", Field(1, "data", "bytes"))

# ---- moby.filesync.v1.Auth (session/auth/auth.proto)
CREDENTIALS_REQUEST = Message("moby.filesync.v1.CredentialsRequest", Field(1, "Host", "string"))
CREDENTIALS_RESPONSE = Message("moby.filesync.v1.CredentialsResponse",
                               Field(1, "Username", "string"), Field(2, "Secret", "string"))

# ---- moby.sshforward.v1 (session/sshforward/ssh.proto); ForwardAgent streams BYTES_MESSAGE both ways
CHECK_AGENT_REQUEST = Message("moby.sshforward.v1.CheckAgentRequest", Field(1, "ID", "string"))
