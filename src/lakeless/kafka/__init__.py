"""Kafka client helpers shared by every stage: clients from settings, topics, headers."""

from lakeless.kafka._clients import make_admin, make_consumer, make_producer, wait_for_broker
from lakeless.kafka._consume import ConsumeErrors
from lakeless.kafka._topics import TopicSpec, create_topics, list_topics, pipeline_topics

__all__ = [
    "ConsumeErrors",
    "TopicSpec",
    "create_topics",
    "list_topics",
    "make_admin",
    "make_consumer",
    "make_producer",
    "pipeline_topics",
    "wait_for_broker",
]
