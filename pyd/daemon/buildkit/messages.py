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
SOLVE_REQUEST = Message("moby.buildkit.v1.SolveRequest",
                        Field(1, "Ref", "string"), Field(3, "ExporterDeprecated", "string"),
                        Field(4, "ExporterAttrsDeprecated", Map("string", "string")), Field(5, "Session", "string"),
                        Field(6, "Frontend", "string"), Field(7, "FrontendAttrs", Map("string", "string")),
                        Field(9, "Entitlements", "string", repeated=True), Field(11, "Internal", "bool"),
                        Field(13, "Exporters", EXPORTER, repeated=True))
STATUS_REQUEST = Message("moby.buildkit.v1.StatusRequest", Field(1, "Ref", "string"))
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
