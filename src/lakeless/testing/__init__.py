"""Helpers for testing lakeless pipelines and your own: shared record corpora, fakes, runners.

`lakeless.testing.corpus` holds good and bad sensor records with the reason code each bad one
must be dead-lettered with, so unit tests, the MQTT bridge and Kafka integration tests all
publish the same inputs.
"""
