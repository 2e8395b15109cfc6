"""omnijourney schemas: the touchpoint contract at the topic edge.

* `touchpoint` - the `Touchpoint` union, the (channel, type) registry, JSON encoding;
  `envelope`, `channels/`, `commerce`, `fields`, `identity` - the models it is made of.
* `validation` - `parse_touchpoint` / `parse_batch` / `decode_touchpoint`, reasons, keys.
* `pii`, `keystore` - email/phone normalization and keyed hashing, free-text scrubbing, the key.
* `deadletter` - dead-letter records and `triage` for the ingest stage.
* `emitter`, `topics` - for Python producers writing to Kafka directly.
* `contracts` - the public output topics and the records of the stitching core on them.
* `export` - JSON Schema files; `examples` - one valid event per (channel, type).
"""
