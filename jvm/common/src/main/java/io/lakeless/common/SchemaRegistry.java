package io.lakeless.common;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Reads the schema registry topic lakeless.schemas and folds it into pipelines. */
public final class SchemaRegistry {
  public static final String TOPIC = "lakeless.schemas";
  private static final Logger LOG = LoggerFactory.getLogger(SchemaRegistry.class);

  private final Map<String, Pipeline> pipelines = new LinkedHashMap<>();

  /** Fold one record value at {@code where} (topic[partition]@offset, for log lines). */
  public void apply(byte[] value, String where) {
    JsonNode node;
    try {
      node = PipelineSchema.JSON.readTree(value);
    } catch (IOException e) {
      LOG.warn("skipping {}: not JSON ({})", where, e.getMessage());
      return;
    }
    if (!"pipeline".equals(node.path("kind").asText()) || node.path("format_version").asInt() != 1) {
      LOG.warn("skipping {}: kind {} format_version {} unknown", where, node.path("kind"),
          node.path("format_version"));
      return;
    }
    String name = node.path("pipeline").asText();
    Map<String, String> topics = new LinkedHashMap<>(Pipeline.defaultTopics(name));
    node.path("topics").fields().forEachRemaining(e -> topics.put(e.getKey(), e.getValue().asText()));
    String model = node.path("model").asText(Pipeline.defaultModel(name));
    try {
      pipelines.computeIfAbsent(name, n -> new Pipeline(n, topics, model)).apply(node);
    } catch (IllegalArgumentException e) {
      LOG.warn("skipping {}: pipeline {} schema refused: {}", where, name, e.getMessage());
    }
  }

  public Map<String, Pipeline> pipelines() {
    return pipelines;
  }

  /**
   * The pipeline {@code name}.
   *
   * @throws IllegalArgumentException it is not registered
   */
  public Pipeline pipeline(String name) {
    Pipeline p = pipelines.get(name);
    if (p == null) {
      throw new IllegalArgumentException("no pipeline " + name + " in " + TOPIC + " (registered: "
          + String.join(", ", Pipeline.names(pipelines)) + ")");
    }
    return p;
  }

  /** Read the whole registry topic (one partition) up to its end offset now. */
  public static SchemaRegistry read(Properties kafka, String topic, Duration timeout) {
    SchemaRegistry registry = new SchemaRegistry();
    Properties props = new Properties();
    props.putAll(kafka);
    props.put("enable.auto.commit", "false");
    props.remove("group.id");
    try (KafkaConsumer<byte[], byte[]> consumer =
        new KafkaConsumer<>(props, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
      TopicPartition tp = new TopicPartition(topic, 0);
      List<TopicPartition> tps = List.of(tp);
      consumer.assign(tps);
      consumer.seekToBeginning(tps);
      long end = consumer.endOffsets(tps, timeout).get(tp);
      long deadline = System.nanoTime() + timeout.toNanos();
      while (consumer.position(tp, timeout) < end) {
        if (System.nanoTime() > deadline) {
          throw new IllegalStateException("reading " + topic + " took longer than " + timeout);
        }
        Iterator<ConsumerRecord<byte[], byte[]>> it = consumer.poll(Duration.ofMillis(200)).iterator();
        while (it.hasNext()) {
          ConsumerRecord<byte[], byte[]> r = it.next();
          registry.apply(r.value(), topic + "[0]@" + r.offset());
        }
      }
    }
    return registry;
  }

  /** Read the registry from {@code bootstrap} with extra client settings. */
  public static SchemaRegistry read(String bootstrap, Map<String, String> client) {
    Properties props = new Properties();
    props.putAll(client);
    props.put("bootstrap.servers", bootstrap);
    return read(props, TOPIC, Duration.ofSeconds(30));
  }

  static String utf8(byte[] b) {
    return b == null ? null : new String(b, StandardCharsets.UTF_8);
  }
}
