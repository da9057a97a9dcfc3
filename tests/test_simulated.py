"""The embedded defaults: with no provider key, the simulated standby answers every sold model."""

from __future__ import annotations

from pathlib import Path

import openai

from tests.support.inprocess import running_inprocess


async def test_default_catalogue_answers_without_any_provider_key(tmp_path: Path) -> None:
    async with running_inprocess(tmp_path) as running:
        account_id = await running.create_account("newcomer")
        await running.http.post(
            f"/api/v1/accounts/{account_id}:credit",
            json={"amount_usd": "5"},
            headers=running.operator() | {"idempotency-key": "welcome"},
        )
        _, key = await running.create_token(await running.login("newcomer"))
        async with openai.AsyncOpenAI(api_key=key, base_url=f"{running.base_url}/v1", max_retries=0) as client:
            answer = await client.chat.completions.create(
                model="claude-sonnet-4-6", messages=[{"role": "user", "content": "try the relay"}]
            )
            stream = await client.chat.completions.create(
                model="deepseek-reasoner",
                messages=[{"role": "user", "content": "and stream"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [chunk async for chunk in stream]
            vectors = await client.embeddings.create(model="text-embedding-3-small", input="x")
    text = answer.choices[0].message.content or ""
    assert text.startswith("(simulated answer) Tollgate received: try the relay")
    assert answer.usage is not None and answer.usage.completion_tokens == 24
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed.startswith("(simulated answer)")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 24
    assert len(vectors.data[0].embedding) == 8
