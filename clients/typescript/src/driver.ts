// Conformance driver: reads one JSON call per line on stdin, answers one JSON line per call on stdout.
// In:  {"id", "address", "credential", "service": "relay"|"billing", "method", "request": <proto JSON>,
//       "cancel_after"?: chunks to read before aborting a stream}
// Out: {"id", "ok": true, "response"?: <proto JSON>, "chunks"?: [<proto JSON>], "cancelled"?: true}
//   or {"id", "ok": false, "code": <gRPC code number>, "reason": <ErrorInfo reason>, "chunks": [...]}
// Calls run concurrently, so one process serves a whole test session.
import { createInterface } from "node:readline";
import { fromJson, toJson, type DescMessage, type JsonValue } from "@bufbuild/protobuf";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { RelayService } from "./gen/tollgate/v1/relay_pb.js";
import { BillingService } from "./gen/tollgate/v1/billing_pb.js";
import { ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";

interface Call {
  id: string;
  address: string;
  credential: string;
  service: "relay" | "billing";
  method: string;
  request: JsonValue;
  cancel_after?: number;
}

type Answer = Record<string, JsonValue>;
type AnyMethod = { methodKind: string; input: DescMessage; output: DescMessage };
type Invoke = (request: unknown, options?: { signal: AbortSignal }) => Promise<never> & AsyncIterable<never>;

const SERVICES = { relay: RelayService, billing: BillingService } as const;
const JSON_OPTIONS = { useProtoFieldName: true } as const;

function failure(error: unknown, chunks: JsonValue[]): Answer {
  const err = ConnectError.from(error);
  const reason = err.findDetails(ErrorInfoSchema)[0]?.reason ?? "";
  return { ok: false, code: err.code, reason, message: err.rawMessage, chunks };
}

async function run(call: Call): Promise<Answer> {
  const service = SERVICES[call.service];
  const method = (service.method as unknown as Record<string, AnyMethod>)[call.method];
  if (!method) throw new Error(`no method ${call.service}.${call.method}`);
  const transport = createGrpcTransport({
    baseUrl: call.address,
    interceptors: [(next) => async (req) => (req.header.set("authorization", `Bearer ${call.credential}`), next(req))],
  });
  // The method is chosen at run time, so the typed client is used through its untyped shape.
  const client = createClient(service as typeof RelayService, transport) as unknown as Record<string, Invoke>;
  const request = fromJson(method.input, call.request);
  const chunks: JsonValue[] = [];
  try {
    if (method.methodKind === "unary") {
      const response = await client[call.method]!(request);
      return { ok: true, response: toJson(method.output, response, JSON_OPTIONS) };
    }
    const abort = new AbortController();
    for await (const chunk of client[call.method]!(request, { signal: abort.signal })) {
      chunks.push(toJson(method.output, chunk, JSON_OPTIONS));
      if (call.cancel_after != null && chunks.length >= call.cancel_after) {
        abort.abort();
        return { ok: true, chunks, cancelled: true };
      }
    }
    return { ok: true, chunks };
  } catch (error) {
    return failure(error, chunks);
  }
}

function answer(id: string, body: Answer): void {
  process.stdout.write(JSON.stringify({ id, ...body }) + "\n");
}

const pending = new Set<Promise<void>>();
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const call = JSON.parse(line) as Call;
  const task = run(call)
    .then((body) => answer(call.id, body))
    .catch((error: unknown) => answer(call.id, { ok: false, code: -1, reason: "", message: String(error) }))
    .finally(() => pending.delete(task));
  pending.add(task);
}
await Promise.all(pending);
