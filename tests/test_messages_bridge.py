"""Anthropic bodies to chat params and chat answers and chunks back to Anthropic messages and events."""

from __future__ import annotations

from typing import Any

from tollgate.v1 import chat_pb2, relay_pb2

from server.providers.messages_bridge import ChunkEvents, chat_params, message_from_completion


def test_body_becomes_chat_params() -> None:
    body: Any = {
        "max_tokens": 50,
        "system": [{"type": "text", "text": "be brief"}],
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}],
            },
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "42"}]},
        ],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any"},
        "stop_sequences": ["END"],
    }
    params = chat_params(body, "deepseek-v4")
    assert params.model == "deepseek-v4" and params.max_tokens == 50 and list(params.stop) == ["END"]
    system, user, assistant, tool = params.messages
    assert (system.role, system.content) == ("system", "be brief")
    assert user.content_parts[0].image_url.url == "data:image/png;base64,AA"
    assert assistant.tool_calls[0].function.arguments == '{"a":1}'
    assert (tool.role, tool.tool_call_id, tool.content) == ("tool", "t1", "42")
    assert params.tools[0].function.name == "f" and params.tool_choice.mode == "required"


def test_answer_becomes_a_message_with_anthropic_usage() -> None:
    usage = chat_pb2.Usage(prompt_tokens=10, completion_tokens=3)
    usage.prompt_tokens_details.cached_tokens = 4
    answer = relay_pb2.CreateChatCompletionResponse(id="abc", usage=usage)
    answer.choices.add(message=chat_pb2.ChatMessage(content="hi", reasoning_content="think"), finish_reason="length")
    message = message_from_completion(answer, "deepseek-chat")
    assert [block["type"] for block in message["content"]] == ["thinking", "text"]
    assert message["stop_reason"] == "max_tokens" and message["id"] == "msg_abc"
    assert message["usage"] == {
        "input_tokens": 6,
        "cache_read_input_tokens": 4,
        "cache_creation_input_tokens": 0,
        "output_tokens": 3,
    }


def test_chunks_become_the_event_sequence() -> None:
    converter = ChunkEvents("deepseek-chat")
    text = relay_pb2.StreamChatCompletionResponse(id="c1")
    text.choices.add(delta=chat_pb2.ChatDelta(content="Hel"))
    more = relay_pb2.StreamChatCompletionResponse(id="c1")
    more.choices.add(delta=chat_pb2.ChatDelta(content="lo"))
    tool = relay_pb2.StreamChatCompletionResponse(id="c1")
    call = chat_pb2.ToolCall(index=0, id="t1", function=chat_pb2.FunctionCall(name="f", arguments='{"a"'))
    tool.choices.add(delta=chat_pb2.ChatDelta(tool_calls=[call]), finish_reason="tool_calls")
    last = relay_pb2.StreamChatCompletionResponse(id="c1", usage=chat_pb2.Usage(prompt_tokens=5, completion_tokens=2))
    events = [*converter.feed(text), *converter.feed(more), *converter.feed(tool), *converter.feed(last)]
    events += converter.finish()
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[6][1]["index"] == 1 and events[6][1]["content_block"]["name"] == "f"
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert events[-2][1]["usage"]["output_tokens"] == 2 and events[-2][1]["usage"]["input_tokens"] == 5
