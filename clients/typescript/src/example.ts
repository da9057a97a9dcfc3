// Example: list the models a token may use, stream a chat completion, then read the account's balance.
//   TOLLGATE_API_KEY=sk-… TOLLGATE_SESSION=tgs-… node dist/example.js [model] [prompt]
// Without TOLLGATE_SESSION, TOLLGATE_ACCOUNT and TOLLGATE_PASSWORD log in for the balance.
import { create } from "@bufbuild/protobuf";
import { connect } from "./client.js";
import { ChatCompletionParamsSchema, ChatMessageSchema } from "./gen/tollgate/v1/chat_pb.js";
import { StreamChatCompletionRequestSchema } from "./gen/tollgate/v1/relay_pb.js";

async function sessionToken(address: string): Promise<string> {
  const given = process.env.TOLLGATE_SESSION;
  if (given) return given;
  const { accounts } = connect(address, "");
  const login = await accounts.createSession({
    name: process.env.TOLLGATE_ACCOUNT ?? "",
    password: process.env.TOLLGATE_PASSWORD ?? "",
  });
  return login.sessionToken;
}

async function main(): Promise<void> {
  const address = process.env.TOLLGATE_GRPC_URL ?? "http://127.0.0.1:50051";
  const { relay } = connect(address, process.env.TOLLGATE_API_KEY ?? "");
  const [model = "deepseek-chat", prompt = "Say hello in five words."] = process.argv.slice(2);

  const models = await relay.listModels({});
  console.log(`models: ${models.data.map((m) => `${m.id} (${m.contextWindow} tokens)`).join(", ")}`);

  const params = create(ChatCompletionParamsSchema, {
    model,
    messages: [create(ChatMessageSchema, { role: "user", content: prompt })],
    streamOptions: { includeUsage: true },
  });
  let usage = "";
  for await (const chunk of relay.streamChatCompletion(create(StreamChatCompletionRequestSchema, { params }))) {
    for (const choice of chunk.choices) process.stdout.write(choice.delta?.content ?? "");
    if (chunk.usage) usage = `${chunk.usage.promptTokens} prompt + ${chunk.usage.completionTokens} completion tokens`;
  }
  process.stdout.write(`\nusage: ${usage}\n`);

  const { billing } = connect(address, await sessionToken(address));
  const { account } = await billing.getBalance({});
  // int64 fields are bigint: micro-USD stay exact.
  console.log(`balance: ${account?.balanceUsd} USD (${account?.balanceMicros} micro-USD)`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
