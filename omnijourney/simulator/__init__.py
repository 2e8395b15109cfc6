"""Seeded omnichannel behaviour with ground truth, for demos and for measuring the pipeline.

* `config` - `SimulationConfig` (customers, days, start, seed, shares) and `TruthRules`
  (the journey and session rules the truth is cut with; they mirror the core's defaults).
* `fiction` - fictional people data: example.com addresses, 555-01xx and Ofcom drama numbers.
* `catalog` - products, stores and tills (some upload at night), campaigns.
* `population` - the people: their identifiers, devices, habits.
* `behaviour` - what one person does on one day, as touches (pure, seeded).
* `events` - touches as producer events; `malformed` - the broken ones flaky clients send.
* `truth` - ground truth: who is behind every identifier, true journeys, late events.
* `generator` - `simulate(config, hasher)`: the events in arrival order, interleaved with truth.
* `delivery` - the adapters: Kafka (via the Emitter), the HTTP collector, a file; pacing and
  the progress line.

Everything but `delivery` is pure: one `random.Random(seed)`, time from the config, no I/O.
"""
