"""Helpers for testing lakeless pipelines and your own: record corpora, events, brokers' clients.

`lakeless.testing.corpus` generates good and bad raw records for any pipeline schema, each bad
one with the reason code it must be dead-lettered with, so unit tests, the MQTT bridge and
Kafka integration tests all publish the same inputs; `lakeless.testing.events` makes events
and clean records of a schema; `lakeless.testing.kafka` produces and reads back topics;
`lakeless.testing.mqtt` publishes like a device and waits for the broker's acknowledgements;
`lakeless.testing.fleet2` is a second car-fleet simulator of another physical model, to test
detection on failures the models were not designed against (``lakeless bench detect``);
`lakeless.testing.waiting.wait_for` polls a condition with a deadline instead of sleeping.
"""
