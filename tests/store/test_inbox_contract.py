"""The webhook inbox contract, both backends: dedup, leases, outcomes, replay, purge, handler tables."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kai_bridge.store import Store, connect_store, open_store
from kai_bridge.store.base import BotState, ConversationEvent, NewEvent

_ids = itertools.count()


class Clock:
    """A clock the test moves by hand, so leases and back-offs expire without waiting."""

    def __init__(self, start: float = 1_760_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def event(key: str | None = None, *, event_type: str = "bot.published", body: str | None = None,
          received_at: float = 1_760_000_000.0) -> NewEvent:
    n = next(_ids)
    return NewEvent(
        id=f"ev{n:08d}",
        dedup_key=key or f"event_id:{n}",
        event_type=event_type,
        source="coze",
        body=body if body is not None else json.dumps({"header": {"event_type": event_type}, "event": {"n": n}}),
        received_at=received_at,
    )


async def test_an_inserted_event_is_pending_with_no_attempts(store_url: str) -> None:
    async with open_store(store_url) as store:
        new = event()
        result = await store.insert_event(new)
        assert (result.id, result.duplicate) == (new.id, False)
        stored = await store.get_event(event_id=new.id)
        assert stored is not None
        assert (stored.status, stored.attempts, stored.body, stored.dedup_key) == ("pending", 0, new.body, new.dedup_key)
        assert stored.lease_owner is None
        assert stored.result is None


async def test_an_event_with_a_known_dedup_key_is_a_duplicate_of_the_first(store_url: str) -> None:
    async with open_store(store_url) as store:
        first = event("event_id:same")
        await store.insert_event(first)
        again = await store.insert_event(event("event_id:same"))
        assert (again.id, again.duplicate) == (first.id, True)
        assert [e.id for e in await store.list_events()] == [first.id]


async def test_dedup_holds_across_closing_and_reopening_the_store(store_url: str) -> None:
    first = event("event_id:restart")
    async with open_store(store_url) as store:
        await store.insert_event(first)
    async with open_store(store_url) as store:
        again = await store.insert_event(event("event_id:restart"))
        assert (again.id, again.duplicate) == (first.id, True)


async def test_concurrent_inserts_store_each_dedup_key_once_and_name_the_winner(store_url: str) -> None:
    async with open_store(store_url) as store:
        events = [event(f"event_id:k{i % 50}") for i in range(200)]
        results = await asyncio.gather(*(store.insert_event(e) for e in events))
        stored = await store.list_events(limit=1000)
        assert len(stored) == 50
        winner = {e.dedup_key: e.id for e in stored}
        for new, result in zip(events, results, strict=True):
            assert result.id == winner[new.dedup_key]
            assert result.duplicate == (result.id != new.id)
        assert sum(not r.duplicate for r in results) == 50


async def test_a_claim_leases_due_events_to_one_owner_oldest_first_and_counts_an_attempt(store_url: str) -> None:
    clock = Clock()
    async with open_store(store_url, clock=clock) as store:
        events = [event(received_at=clock.now - 10 + i) for i in range(5)]
        for e in reversed(events):
            await store.insert_event(e)
        claimed = await store.claim_events(owner="a", limit=3, lease=30)
        assert [c.id for c in claimed] == [e.id for e in events[:3]]
        assert {(c.status, c.attempts, c.lease_owner) for c in claimed} == {("processing", 1, "a")}
        assert [c.id for c in await store.claim_events(owner="b", limit=10, lease=30)] == [e.id for e in events[3:]]
        assert await store.claim_events(owner="c", limit=10, lease=30) == []


async def test_an_expired_lease_is_claimed_again_and_the_old_owner_can_no_longer_finish(store_url: str) -> None:
    clock = Clock()
    async with open_store(store_url, clock=clock) as store:
        new = event()
        await store.insert_event(new)
        assert len(await store.claim_events(owner="dead", limit=1, lease=30)) == 1
        clock.advance(29)
        assert await store.claim_events(owner="new", limit=1, lease=30) == []
        clock.advance(2)
        [again] = await store.claim_events(owner="new", limit=1, lease=30)
        assert (again.id, again.attempts, again.lease_owner) == (new.id, 2, "new")
        assert not await store.finish_event(event_id=new.id, owner="dead", status="done", result=None, error=None)
        assert await store.finish_event(event_id=new.id, owner="new", status="done", result='{"ok":true}', error=None)
        done = await store.get_event(event_id=new.id)
        assert done is not None
        assert (done.status, done.result, done.lease_owner) == ("done", '{"ok":true}', None)


async def test_renewing_keeps_a_lease_past_its_first_expiry(store_url: str) -> None:
    clock = Clock()
    async with open_store(store_url, clock=clock) as store:
        await store.insert_event(event())
        await store.claim_events(owner="a", limit=1, lease=30)
        clock.advance(20)
        assert await store.renew_leases(owner="a", lease=30) == 1
        assert await store.renew_leases(owner="nobody", lease=30) == 0
        clock.advance(20)
        assert await store.claim_events(owner="b", limit=1, lease=30) == []
        clock.advance(11)
        assert len(await store.claim_events(owner="b", limit=1, lease=30)) == 1


async def test_a_retrying_event_is_due_again_only_at_its_due_time(store_url: str) -> None:
    clock = Clock()
    async with open_store(store_url, clock=clock) as store:
        new = event()
        await store.insert_event(new)
        await store.claim_events(owner="a", limit=1, lease=30)
        assert await store.finish_event(
            event_id=new.id, owner="a", status="retrying", result=None, error="boom", due_at=clock.now + 60
        )
        stored = await store.get_event(event_id=new.id)
        assert stored is not None
        assert (stored.status, stored.last_error, stored.attempts) == ("retrying", "boom", 1)
        clock.advance(59)
        assert await store.claim_events(owner="a", limit=1, lease=30) == []
        clock.advance(1)
        [again] = await store.claim_events(owner="a", limit=1, lease=30)
        assert again.attempts == 2


@pytest.mark.parametrize("status", [pytest.param("done", id="done"), pytest.param("dead", id="dead")])
async def test_a_finished_event_is_never_claimed_again(store_url: str, status: str) -> None:
    clock = Clock()
    async with open_store(store_url, clock=clock) as store:
        new = event()
        await store.insert_event(new)
        await store.claim_events(owner="a", limit=1, lease=30)
        await store.finish_event(event_id=new.id, owner="a", status=status, result=None, error="why")
        clock.advance(10_000)
        assert await store.claim_events(owner="a", limit=10, lease=30) == []


async def test_released_events_are_due_at_once_without_the_attempt_counted(store_url: str) -> None:
    clock = Clock()
    async with open_store(store_url, clock=clock) as store:
        fresh, tried = event(), event()
        await store.insert_event(fresh)
        await store.insert_event(tried)
        await store.claim_events(owner="a", limit=2, lease=30)
        await store.finish_event(event_id=tried.id, owner="a", status="retrying", result=None, error="x",
                                 due_at=clock.now)
        await store.claim_events(owner="a", limit=2, lease=30)  # takes `tried` again (attempt 2)
        assert await store.release_events(owner="a") == 2
        states = {e.id: (e.status, e.attempts) for e in await store.list_events()}
        assert states == {fresh.id: ("pending", 0), tried.id: ("retrying", 1)}
        assert len(await store.claim_events(owner="b", limit=5, lease=30)) == 2


async def test_owners_claiming_at_the_same_time_never_share_an_event(store_url: str) -> None:
    async with open_store(store_url) as one, open_store(store_url) as two:
        events = [event() for _ in range(120)]
        await asyncio.gather(*(one.insert_event(e) for e in events))
        seen: dict[str, list[str]] = {}

        async def worker(store: Store, owner: str) -> None:
            while batch := await store.claim_events(owner=owner, limit=7, lease=300):
                for claimed in batch:
                    seen.setdefault(claimed.id, []).append(owner)
                    await store.finish_event(event_id=claimed.id, owner=owner, status="done", result=None, error=None)

        await asyncio.gather(*(worker(store, f"{name}-{i}") for name, store in (("one", one), ("two", two))
                               for i in range(3)))
        assert sorted(seen) == sorted(e.id for e in events)
        assert all(len(owners) == 1 for owners in seen.values())


async def test_replay_makes_an_event_pending_again_unless_it_is_leased(store_url: str) -> None:
    clock = Clock()
    async with open_store(store_url, clock=clock) as store:
        new = event()
        await store.insert_event(new)
        await store.claim_events(owner="a", limit=1, lease=30)
        assert not await store.replay_event(event_id=new.id)  # live lease
        await store.finish_event(event_id=new.id, owner="a", status="dead", result='{"r":1}', error="gave up")
        assert await store.replay_event(event_id=new.id)
        stored = await store.get_event(event_id=new.id)
        assert stored is not None
        assert (stored.status, stored.attempts, stored.last_error, stored.result) == ("pending", 0, None, None)
        assert not await store.replay_event(event_id="no-such-event")


async def test_replay_takes_over_a_lease_that_ran_out(store_url: str) -> None:
    clock = Clock()
    async with open_store(store_url, clock=clock) as store:
        new = event()
        await store.insert_event(new)
        await store.claim_events(owner="crashed", limit=1, lease=30)
        clock.advance(31)
        assert await store.replay_event(event_id=new.id)


async def test_purge_deletes_only_finished_events_received_before_the_cut(store_url: str) -> None:
    clock = Clock()
    async with open_store(store_url, clock=clock) as store:
        old_done, old_dead, old_pending = (event(received_at=100.0) for _ in range(3))
        new_done = event(received_at=clock.now)
        for e in (old_done, old_dead, old_pending, new_done):
            await store.insert_event(e)
        claimed = {c.id for c in await store.claim_events(owner="a", limit=10, lease=30)}
        assert old_pending.id in claimed
        for e, status in ((old_done, "done"), (old_dead, "dead"), (new_done, "done")):
            await store.finish_event(event_id=e.id, owner="a", status=status, result=None, error=None)
        await store.release_events(owner="a")
        assert await store.purge_events(before=1000.0) == 2
        assert sorted(e.id for e in await store.list_events()) == sorted([old_pending.id, new_done.id])


async def test_list_and_count_report_statuses_newest_first(store_url: str) -> None:
    clock = Clock()
    async with open_store(store_url, clock=clock) as store:
        events = [event(received_at=float(i)) for i in range(1, 6)]
        for e in events:
            await store.insert_event(e)
        [first] = await store.claim_events(owner="a", limit=1, lease=30)
        await store.finish_event(event_id=first.id, owner="a", status="done", result=None, error=None)
        assert [e.id for e in await store.list_events(limit=2)] == [events[4].id, events[3].id]
        assert [e.id for e in await store.list_events(status="done")] == [events[0].id]
        assert await store.count_events() == {"done": 1, "pending": 4}
        with pytest.raises(ValueError, match="unknown event status"):
            await store.list_events(status="bogus")


async def test_a_bot_state_is_replaced_only_by_a_newer_one(store_url: str) -> None:
    async with open_store(store_url) as store:
        published = BotState(bot_id="b1", state="published", event_type="bot.published", event_id="e1",
                             bot_name="Coffee", connector_id="1024", changed_at=10.0)
        deleted = BotState(bot_id="b1", state="deleted", event_type="bot.deleted", event_id="e2", bot_name=None,
                           connector_id=None, changed_at=20.0)
        assert await store.set_bot_state(published)
        assert await store.set_bot_state(deleted)
        assert not await store.set_bot_state(published)  # older: a late re-send does not win
        got = await store.get_bot_state(bot_id="b1")
        assert got is not None
        assert (got.state, got.event_id, got.bot_name, got.connector_id) == ("deleted", "e2", "Coffee", "1024")
        assert await store.get_bot_state(bot_id="other") is None
        assert [s.bot_id for s in await store.list_bot_states()] == ["b1"]


async def test_conversation_events_are_kept_once_each_and_listed_oldest_first(store_url: str) -> None:
    async with open_store(store_url) as store:
        for i in range(5):
            record = ConversationEvent(conversation_id="conv_1", event_id=f"e{i}", event_type="conversation.message",
                                       message=f"hello {i}", data=json.dumps({"i": i}), received_at=float(i))
            await store.add_conversation_event(record)
            await store.add_conversation_event(record)
        await store.add_conversation_event(ConversationEvent(
            conversation_id="conv_2", event_id="x", event_type="t", message=None, data="{}", received_at=0.0))
        listed = await store.list_conversation_events(conversation_id="conv_1", limit=3)
        assert [e.message for e in listed] == ["hello 2", "hello 3", "hello 4"]
        assert len(await store.list_conversation_events(conversation_id="conv_1")) == 5


def test_any_body_reads_back_as_it_was_sent(store_url: str) -> None:
    loop = asyncio.new_event_loop()
    store = loop.run_until_complete(connect_store(store_url))
    try:

        @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(payload=st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                                    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=20),
               event_type=st.text(min_size=1, max_size=64))
        def roundtrip(payload: object, event_type: str) -> None:
            body = json.dumps({"event": event_type, "data": payload}, ensure_ascii=False)
            new = NewEvent(id=f"h{next(_ids)}", dedup_key=f"k{next(_ids)}", event_type=event_type, source="token",
                           body=body.encode("utf-8", "replace").decode("utf-8"), received_at=1.0)
            loop.run_until_complete(store.insert_event(new))
            got = loop.run_until_complete(store.get_event(event_id=new.id))
            assert got is not None
            assert json.loads(got.body) == json.loads(new.body)

        roundtrip()
    finally:
        loop.run_until_complete(store.close())
        loop.close()
