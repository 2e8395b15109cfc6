"""Sending a simulation: to Kafka through the Emitter, to the HTTP collector, or to a file.

The thin, impure side of the simulator: producers, HTTP, files, the wall clock, pacing and
the progress line. Truth records go to the truth file as they come.

`sent_at` (the producer's clock when it sends) decides the event time the edge computes:
`occurred_at = received_at - (sent_at - occurred_at)`, with `received_at` the broker's clock.

* `wall` (default): the real clock at send time, as any real client stamps it. Event times
  stay exactly as simulated (up to the network delay) even for a simulated past.
* `simulated`: the simulated send time (a nightly till's upload time). Byte-identical runs,
  but right only where the simulated clock is the real one; with a past `--start` the edge
  moves every event to about now.
* `none`: no sent_at; the edge keeps occurred_at as sent. Byte-identical and time-exact.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import IO, Any, Final, Literal, Protocol

import orjson

from omnijourney.exceptions import ConfigurationError, TransientError
from omnijourney.simulator.events import iso
from omnijourney.simulator.generator import Emission
from omnijourney.simulator.truth import TruthRecord
from schemas.emitter import Emitter
from schemas.topics import TOPIC_PREFIX, Record

SentAt = Literal["wall", "simulated", "none"]
SENT_AT_MODES: Final[tuple[SentAt, ...]] = ("wall", "simulated", "none")
Item = Emission | TruthRecord
Clock = Callable[[], datetime]

COLLECTOR_PATH: Final = "/v1/touchpoints"
BATCH_EVENTS: Final = 100
RAW_TOPIC_CONFIG: Final = {"message.timestamp.type": "LogAppendTime"}
"""As the pipeline creates raw topics: received_at is the broker's clock (decision 0004)."""
_GATHER_EVERY: Final = 5_000
_MAX_ATTEMPTS: Final = 30


def utc_now() -> datetime:
    """The wall clock (the one impure clock of the simulator)."""
    return datetime.now(UTC)


@dataclass(slots=True)
class Tally:
    """What was sent."""

    records: int = 0
    events: int = 0
    duplicates: int = 0
    malformed: int = 0
    accepted: int = 0
    """Collector only: events it answered as accepted."""
    rejected: int = 0
    """Collector only: events it refused (malformed ones are meant to be)."""
    retries: int = 0
    elapsed: float = 0.0

    def count(self, emission: Emission) -> None:
        """Count one sent emission."""
        self.records += 1
        if emission.kind == "event":
            self.events += 1
        elif emission.kind == "duplicate":
            self.duplicates += 1
        else:
            self.malformed += 1


class Stamper:
    """Sets `sent_at` on an emission's event as the chosen mode says."""

    def __init__(self, mode: SentAt, clock: Clock = utc_now) -> None:
        if mode not in SENT_AT_MODES:
            raise ConfigurationError(f"sent_at mode must be one of {', '.join(SENT_AT_MODES)}")
        self.mode = mode
        self.clock = clock

    def stamp(self, emission: Emission) -> tuple[dict[str, Any], datetime]:
        """(the event as sent, the sender's clock) of a valid emission."""
        assert emission.event is not None
        if self.mode == "wall":
            now = self.clock()
            return {**emission.event, "sent_at": now}, now
        simulated = datetime.fromtimestamp(emission.send_at, UTC)
        if self.mode == "simulated":
            return {**emission.event, "sent_at": simulated}, simulated
        return {**emission.event, "sent_at": None}, simulated


def kafka_record(emission: Emission, emitter: Emitter, stamper: Stamper, prefix: str) -> Record:
    """The Kafka record of an emission: hashed by the Emitter, or the malformed bytes as sent."""
    topic = f"{prefix}.{emission.channel}"
    if emission.raw is not None:
        return Record(topic, b"", emission.raw)
    event, now = stamper.stamp(emission)
    record = emitter.record(event, now=now)
    return Record(topic, record.key, record.value)


# --- pacing and progress --------------------------------------------------------------------


class Pacer:
    """Holds a target rate (records/s); None sends as fast as possible."""

    def __init__(self, rate: float | None, monotonic: Callable[[], float] = time.monotonic) -> None:
        if rate is not None and rate <= 0:
            raise ConfigurationError(f"--rate must be positive, got {rate}")
        self.rate = rate
        self.monotonic = monotonic
        self.started = monotonic()

    def delay(self, sent: int) -> float:
        """Seconds to wait before sending record number `sent + 1`."""
        if self.rate is None:
            return 0.0
        return max(0.0, self.started + sent / self.rate - self.monotonic())


def progress_line(sent: int, elapsed: float, fraction: float, simulated: int) -> str:
    """`records, rate, simulated time, share done, ETA` on one line."""
    rate = sent / elapsed if elapsed > 0 else 0.0
    fraction = min(max(fraction, 0.0), 1.0)
    if fraction >= 1.0:
        eta = "0:00:00"
    elif fraction > 0:
        eta = _clock(elapsed * (1 - fraction) / fraction)
    else:
        eta = "?"
    when = iso(simulated)[:16].replace("T", " ")
    return (
        f"simulate: {sent:>11,} sent  {rate:>9,.0f} events/s  at {when}  "
        f"{fraction * 100:5.1f}%  ETA {eta}"
    )


def _clock(seconds: float) -> str:
    whole = int(seconds + 0.5)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


class ProgressSink(Protocol):
    """What the senders report their progress to (`Progress`, or the demo's status line)."""

    def update(self, sent: int, simulated: int, *, final: bool = False) -> None:
        """`sent` records so far, the latest of simulated send time `simulated`."""


class Progress:
    """The progress line on stderr: rewritten in place on a terminal, every 5 s otherwise."""

    def __init__(
        self,
        start: int,
        end: int,
        stream: IO[str] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        enabled: bool = True,
    ) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.start, self.span = start, max(1, end - start)
        self.monotonic = monotonic
        self.started = self.last = monotonic()
        self.enabled = enabled
        self.interactive = self.stream.isatty()
        self.every = 0.25 if self.interactive else 5.0
        self.shown = False

    def update(self, sent: int, simulated: int, *, final: bool = False) -> None:
        """Show the line if it is time to (always when `final`)."""
        now = self.monotonic()
        if not self.enabled or (not final and now - self.last < self.every):
            return
        self.last = now
        fraction = 1.0 if final else (simulated - self.start) / self.span
        line = progress_line(sent, now - self.started, fraction, simulated)
        if self.interactive:
            self.stream.write(f"\r{line}\x1b[K" + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.shown = True


# --- sinks ----------------------------------------------------------------------------------


async def to_kafka(
    items: Iterable[Item],
    *,
    bootstrap: str,
    emitter: Emitter,
    stamper: Stamper,
    truth: Callable[[TruthRecord], None],
    pacer: Pacer,
    progress: ProgressSink,
    prefix: str = TOPIC_PREFIX,
    partitions: int = 3,
) -> Tally:
    """Produce the emissions (acks=all, idempotent producer) to `<prefix>.<channel>` topics."""
    from aiokafka import AIOKafkaProducer

    from omnijourney.local.admin import ensure_topics
    from schemas.channel import CHANNELS

    topics = {f"{prefix}.{channel}": partitions for channel in CHANNELS}
    await ensure_topics(bootstrap, topics, config=RAW_TOPIC_CONFIG)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,  # a producer retry must not add duplicates of its own
        linger_ms=10,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    tally = Tally()
    started = time.monotonic()
    try:
        pending: list[asyncio.Future[Any]] = []
        last = 0
        for item in items:
            if isinstance(item, TruthRecord):
                truth(item)
                continue
            topic, key, value = kafka_record(item, emitter, stamper, prefix)
            pending.append(await producer.send(topic, value, key=key or None))
            tally.count(item)
            last = item.send_at
            if len(pending) >= 2 * _GATHER_EVERY:
                # the older half: surfaces delivery errors and bounds memory while the newer
                # half keeps the producer busy
                await asyncio.gather(*pending[:_GATHER_EVERY])
                del pending[:_GATHER_EVERY]
            if (delay := pacer.delay(tally.records)) > 0.005:
                await asyncio.sleep(delay)
            progress.update(tally.records, last)
        await asyncio.gather(*pending)
        progress.update(tally.records, last, final=True)
    finally:
        await producer.stop()
    tally.elapsed = time.monotonic() - started
    return tally


def to_file(
    items: Iterable[Item],
    out: IO[bytes],
    *,
    emitter: Emitter,
    stamper: Stamper,
    truth: Callable[[TruthRecord], None],
    progress: ProgressSink,
    prefix: str = TOPIC_PREFIX,
) -> Tally:
    """Write what would be produced, one `topic<TAB>key<TAB>value` line per record."""
    tally = Tally()
    started = time.monotonic()
    last = 0
    for item in items:
        if isinstance(item, TruthRecord):
            truth(item)
            continue
        topic, key, value = kafka_record(item, emitter, stamper, prefix)
        out.write(b"%s\t%s\t%s\n" % (topic.encode(), key, value))
        tally.count(item)
        last = item.send_at
        progress.update(tally.records, last)
    progress.update(tally.records, last, final=True)
    tally.elapsed = time.monotonic() - started
    return tally


def collector_url(url: str) -> str:
    """The collector's touchpoint endpoint from its base URL (or the endpoint itself)."""
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"--via-collector needs an http(s) URL, got {url!r}")
    return url if url.endswith(COLLECTOR_PATH) else url + COLLECTOR_PATH


async def to_collector(
    items: Iterable[Item],
    *,
    url: str,
    write_key: str,
    stamper: Stamper,
    truth: Callable[[TruthRecord], None],
    pacer: Pacer,
    progress: ProgressSink,
) -> Tally:
    """POST the events in JSON-array batches of 100 with the write key; honour 503 Retry-After.

    The collector hashes clear emails and phones itself (it is the edge), so the events go as
    the simulation made them. A malformed record that is not JSON is sent alone as the body.
    The collector takes a request all or nothing: when it refuses events of a batch (422,
    naming them by index) the rest is sent again without them, as a real sender would.
    """
    import aiohttp

    endpoint = collector_url(url)
    headers = {"Authorization": f"Bearer {write_key}", "Content-Type": "application/json"}
    tally = Tally()
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        last = 0
        batch: list[bytes] = []
        size = 0

        async def flush() -> None:
            nonlocal batch, size
            if batch:
                await _post_batch(session, endpoint, batch, tally)
                batch, size = [], 0

        for item in items:
            if isinstance(item, TruthRecord):
                truth(item)
                continue
            tally.count(item)
            last = item.send_at
            if item.raw is not None and not _is_json(item.raw):
                # alone, as the whole body (an array cannot hold it); valid events keep order
                await _post(session, endpoint, item.raw, 1, tally)
            else:
                if item.raw is not None:
                    batch.append(item.raw)
                else:
                    event, _ = stamper.stamp(item)
                    batch.append(orjson.dumps(event))
                size += 1
                if size == BATCH_EVENTS:
                    await flush()
            if (delay := pacer.delay(tally.records)) > 0.005:
                await flush()
                await asyncio.sleep(delay)
            progress.update(tally.records, last)
        await flush()
        progress.update(tally.records, last, final=True)
    tally.elapsed = time.monotonic() - started
    return tally


def _is_json(raw: bytes) -> bool:
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return True


def retry_after(value: str | None, now: datetime, default: float = 1.0) -> float:
    """Seconds a Retry-After header asks to wait (delta-seconds or an HTTP date), capped."""
    if not value:
        return default
    value = value.strip()
    if value.isdigit():
        return min(float(value), 300.0)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - now).total_seconds()), 300.0)


async def _post_batch(session: Any, endpoint: str, batch: list[bytes], tally: Tally) -> None:
    """A JSON array of events; events the collector refuses are left out and the rest resent."""
    while batch:
        body = b"[" + b",".join(batch) + b"]"
        refused = await _post(session, endpoint, body, len(batch), tally, by_index=True)
        if refused is None:
            return
        if not refused:  # refusals not listed one by one: find them sending each alone
            for event in batch:
                await _post(session, endpoint, b"[" + event + b"]", 1, tally)
            return
        tally.rejected += len(refused)
        batch = [event for index, event in enumerate(batch) if index not in refused]


def _json_or_none(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _refused_indexes(answer: Any, events: int) -> set[int]:
    """Indexes a 422 answer names (empty: the answer does not list every refused event)."""
    if not isinstance(answer, dict) or answer.get("errors_truncated"):
        return set()
    errors = answer.get("errors")
    if not isinstance(errors, list):
        return set()
    indexes = {e.get("index") for e in errors if isinstance(e, dict)}
    if not indexes or not all(isinstance(i, int) and 0 <= i < events for i in indexes):
        return set()
    return {int(i) for i in indexes if isinstance(i, int)}


async def _post(
    session: Any, endpoint: str, body: bytes, events: int, tally: Tally, *, by_index: bool = False
) -> set[int] | None:
    """One request, retried on 429/503 (after Retry-After) and on 5xx or network errors.

    With `by_index`, a 422 answer returns the refused indexes (empty when it does not list
    them) for the caller to resend the rest; otherwise the whole request counts as refused.
    """
    import aiohttp

    backoff = 0.5
    for attempt in range(1, _MAX_ATTEMPTS + 1):
        try:
            async with session.post(endpoint, data=body) as response:
                status = response.status
                if status in (200, 201, 202):
                    answer = await response.json(content_type=None)
                    accepted = events
                    if isinstance(answer, dict) and isinstance(answer.get("accepted"), int):
                        accepted = answer["accepted"]
                    tally.accepted += accepted
                    tally.rejected += events - accepted
                    return None
                if status in (401, 403):
                    raise ConfigurationError(
                        f"the collector refused the write key (HTTP {status}): check --write-key "
                        "and that it may write every channel"
                    )
                if status in (429, 503):
                    wait = retry_after(response.headers.get("Retry-After"), utc_now())
                elif status >= 500:
                    wait = backoff
                    backoff = min(backoff * 2, 10.0)
                else:  # 400, 413, 422: the whole body was refused; malformed ones are meant to be
                    answer = await response.read()
                    if by_index and status == 422 and events > 1:
                        return _refused_indexes(_json_or_none(answer), events)
                    tally.rejected += events
                    return None
        except (TimeoutError, aiohttp.ClientError) as exc:
            wait = backoff
            backoff = min(backoff * 2, 10.0)
            if attempt == _MAX_ATTEMPTS:
                raise TransientError(f"collector at {endpoint} unreachable: {exc}") from exc
        tally.retries += 1
        await asyncio.sleep(wait)
    raise TransientError(f"collector at {endpoint} still busy after {_MAX_ATTEMPTS} attempts")
