"""The SSE parser yields the same events however the bytes are cut into network chunks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kai_bridge.coze.streaming import ServerSentEvent, SSEDecoder, aiter_sse

CHINESE = "手冲咖啡的技巧：水温92℃，研磨度中细，粉水比1:15。埃塞俄比亚耶加雪菲有柑橘与茉莉花香☕🌸"


def realistic_events() -> list[ServerSentEvent]:
    chat = {"id": "7390000000000000777", "conversation_id": "7390000000000000888", "status": "in_progress"}
    events = [
        ServerSentEvent("conversation.chat.created", json.dumps({**chat, "status": "created"}, ensure_ascii=False)),
        ServerSentEvent("conversation.chat.in_progress", json.dumps(chat, ensure_ascii=False)),
    ]
    for i in range(0, len(CHINESE), 7):
        delta = {"id": "m1", "role": "assistant", "type": "answer", "content": CHINESE[i : i + 7],
                 "content_type": "text"}
        events.append(ServerSentEvent("conversation.message.delta", json.dumps(delta, ensure_ascii=False)))
    # raw U+2028 inside JSON: legal JSON, and must not be taken for a line break
    done_msg = {"id": "m1", "role": "assistant", "type": "answer", "content": CHINESE + "\u2028end",
                "content_type": "text"}
    events.append(ServerSentEvent("conversation.message.completed", json.dumps(done_msg, ensure_ascii=False)))
    events.append(ServerSentEvent("conversation.chat.completed", json.dumps({**chat, "status": "completed"})))
    events.append(ServerSentEvent("done", '"[DONE]"'))
    return events


def encode(events: list[ServerSentEvent], *, newlines: list[str], spaces: list[bool], comments: bool) -> bytes:
    out: list[str] = []
    k = 0

    def nl() -> str:
        nonlocal k
        k += 1
        return newlines[k % len(newlines)]

    for index, event in enumerate(events):
        if comments and index % 3 == 0:
            out.append(": keep-alive" + nl())
        sep = ": " if spaces[index % len(spaces)] else ":"
        out.append(f"event{sep}{event.event}" + nl())
        out.append(f"data{sep}{event.data}" + nl())
        out.append(nl())
    return "".join(out).encode("utf-8")


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks, last = [], 0
    for p in points:
        chunks.append(data[last:p])
        last = p
    chunks.append(data[last:])
    return chunks


def decode_all(chunks: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.close())
    return events


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    # A bare \r followed by a \n would be one \r\n break, so \r is only mixed with itself.
    newlines=st.sampled_from([["\n"], ["\r\n"], ["\r"], ["\n", "\r\n"], ["\r\n", "\n", "\n"]]),
    spaces=st.lists(st.booleans(), min_size=1, max_size=3),
    comments=st.booleans(),
)
def test_any_chunking_of_a_realistic_stream_yields_the_same_events(
    data: st.DataObject, newlines: list[str], spaces: list[bool], comments: bool
) -> None:
    expected = realistic_events()
    raw = encode(expected, newlines=newlines, spaces=spaces, comments=comments)
    # Cuts anywhere, plus cuts right after a \r or inside a multi-byte character, the hard spots.
    hard = [i + 1 for i, b in enumerate(raw) if b == 0x0D or b >= 0xC0]
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(raw)), max_size=40))
    cuts += data.draw(st.lists(st.sampled_from(hard), max_size=20)) if hard else []
    assert decode_all(split(raw, cuts)) == expected


@settings(max_examples=100, deadline=None)
@given(text=st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"),
                    max_size=200))
def test_byte_by_byte_feeding_keeps_every_character(text: str) -> None:
    data = f"event:x\ndata:{text}\n\n".encode()
    events = decode_all([data[i : i + 1] for i in range(len(data))])
    expected_data = text[1:] if text.startswith(" ") else text
    assert events == [ServerSentEvent("x", expected_data)]


def test_multi_byte_character_split_between_chunks_is_decoded_once() -> None:
    data = "data:咖啡\n\n".encode()
    cut = data.index("咖".encode()) + 1  # inside the 3-byte sequence
    assert decode_all([data[:cut], data[cut:]]) == [ServerSentEvent("message", "咖啡")]


def test_crlf_split_between_chunks_is_one_line_break() -> None:
    assert decode_all([b"event:a\r", b"\ndata:1\r", b"\n\r", b"\n"]) == [ServerSentEvent("a", "1")]


def test_comments_and_unknown_fields_are_ignored_and_data_lines_join_with_newline() -> None:
    data = b": hello\nfoo:bar\nevent: e\ndata: one\ndata:two\n\n"
    assert decode_all([data]) == [ServerSentEvent("e", "one\ntwo")]


def test_id_and_retry_fields_are_kept() -> None:
    events = decode_all([b"id: 7\nretry: 1500\nevent:Message\ndata:{}\n\n"])
    assert events == [ServerSentEvent("Message", "{}", id="7", retry=1500)]


def test_leading_byte_order_mark_is_dropped() -> None:
    assert decode_all(["\ufeffevent:a\ndata:1\n\n".encode()]) == [ServerSentEvent("a", "1")]


def test_complete_lines_without_final_blank_line_are_dispatched_at_close() -> None:
    assert decode_all([b"event:done\ndata:\"[DONE]\"\n"]) == [ServerSentEvent("done", '"[DONE]"')]


def test_truncated_final_line_is_not_passed_off_as_whole() -> None:
    events = decode_all([b'event:conversation.message.delta\ndata:{"content":"half'])
    assert events == [ServerSentEvent("conversation.message.delta", "")]
    assert decode_all([b'data:{"content":"half']) == []


async def test_aiter_sse_yields_each_event_as_soon_as_it_is_complete() -> None:
    seen: list[str] = []

    async def chunks() -> AsyncIterator[bytes]:
        yield b"event:a\ndata:1\n\nevent:b\n"
        seen.append("second chunk requested")
        yield b"data:2\n\n"

    got = []
    async for event in aiter_sse(chunks()):
        got.append((event.event, list(seen)))
    assert got == [("a", []), ("b", ["second chunk requested"])]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(b"data:x\n\n", [ServerSentEvent("message", "x")], id="default-event-name"),
        pytest.param(b"data\n\n", [ServerSentEvent("message", "")], id="field-without-colon"),
        pytest.param(b"\n\n\n", [], id="blank-lines-only"),
        pytest.param(b"event:a\r\rdata:b\r\r", [ServerSentEvent("a", ""), ServerSentEvent("message", "b")],
                     id="bare-cr"),
    ],
)
def test_edge_cases_follow_the_sse_rules(raw: bytes, expected: list[ServerSentEvent]) -> None:
    assert decode_all([raw]) == expected
