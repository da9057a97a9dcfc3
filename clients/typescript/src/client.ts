// Clients for Tollgate's gRPC services over @connectrpc/connect-node's gRPC transport (HTTP/2 cleartext).
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { RelayService } from "./gen/tollgate/v1/relay_pb.js";
import { BillingService } from "./gen/tollgate/v1/billing_pb.js";
import { AccountService } from "./gen/tollgate/v1/account_pb.js";

/** The services an application uses, each bound to one credential. */
export interface Tollgate {
  relay: Client<typeof RelayService>;
  billing: Client<typeof BillingService>;
  accounts: Client<typeof AccountService>;
}

/** Sends `authorization: Bearer <credential>` on every call (an API key, a session or the operator key). */
function bearer(credential: string): Interceptor {
  return (next) => async (request) => {
    request.header.set("authorization", `Bearer ${credential}`);
    return next(request);
  };
}

/** `baseUrl` is the gRPC address as a URL, e.g. `http://127.0.0.1:50051`. */
export function connect(baseUrl: string, credential: string): Tollgate {
  const interceptors = credential ? [bearer(credential)] : [];
  const transport = createGrpcTransport({ baseUrl, interceptors });
  return {
    relay: createClient(RelayService, transport),
    billing: createClient(BillingService, transport),
    accounts: createClient(AccountService, transport),
  };
}
