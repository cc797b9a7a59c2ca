package io.lakeless.common;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.function.Predicate;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * For the integration tests: the real broker named by {@code -Dlakeless.test.bootstrap} (set by
 * tests/integration/test_jvm.py), unique topics, producing and reading records.
 */
public final class TestKafka {
  public static final String PROPERTY = "lakeless.test.bootstrap";

  private TestKafka() {}

  /** The broker, or null when the tests run without one (they are then skipped). */
  public static String bootstrap() {
    String b = System.getProperty(PROPERTY);
    return b == null || b.isBlank() ? null : b;
  }

  public static Properties client() {
    Properties p = new Properties();
    p.put("bootstrap.servers", bootstrap());
    return p;
  }

  /**
   * A new topic named {@code prefix-<random>} with {@code partitions} partitions, kept forever
   * (the vectors' events are stamped in 2025: a default retention would delete them at once).
   */
  public static String topic(String prefix, int partitions) throws Exception {
    String name = prefix + "-" + UUID.randomUUID().toString().substring(0, 8);
    try (Admin admin = Admin.create(client())) {
      NewTopic topic = new NewTopic(name, partitions, (short) 1).configs(Map.of("retention.ms", "-1"));
      admin.createTopics(List.of(topic)).all().get();
    }
    return name;
  }

  /** A record to produce: key, value, timestamp (null: now), headers. */
  public record Out(byte[] key, byte[] value, Long timestamp, List<String[]> headers) {
    public static Out of(String key, byte[] value) {
      return new Out(key.getBytes(StandardCharsets.UTF_8), value, null, List.of());
    }
  }

  public static void produce(String topic, List<Out> records) throws Exception {
    Properties p = client();
    p.put("acks", "all");
    p.put("linger.ms", "5");
    try (KafkaProducer<byte[], byte[]> producer =
        new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
      for (Out r : records) {
        ProducerRecord<byte[], byte[]> pr = new ProducerRecord<>(topic, null, r.timestamp(), r.key(), r.value());
        for (String[] h : r.headers()) {
          pr.headers().add(new RecordHeader(h[0], h[1].getBytes(StandardCharsets.UTF_8)));
        }
        producer.send(pr);
      }
      producer.flush();
    }
  }

  /** A registry.json entry as the record a registry would write (key, value, headers). */
  public static Out entry(String id) {
    RegistryEntry e = Vectors.entry(id);
    String kind = e instanceof RegistryEntry.Model ? "model" : "stage";
    return new Out(e.name().getBytes(StandardCharsets.UTF_8), Vectors.entryBytes(id), null,
        List.of(new String[] {"lakeless.kind", kind}, new String[] {"lakeless.name", e.name()},
            new String[] {"lakeless.version", String.valueOf(e.version())}));
  }

  /** Read {@code topic} from the beginning until {@code done} holds, or fail after {@code timeout}. */
  public static List<ConsumerRecord<byte[], byte[]>> readUntil(String topic, Duration timeout,
      Predicate<List<ConsumerRecord<byte[], byte[]>>> done) {
    Properties p = client();
    p.put("group.id", "lakeless-test-" + UUID.randomUUID());
    p.put("auto.offset.reset", "earliest");
    p.put("enable.auto.commit", "false");
    List<ConsumerRecord<byte[], byte[]>> out = new ArrayList<>();
    long deadline = System.nanoTime() + timeout.toNanos();
    try (KafkaConsumer<byte[], byte[]> consumer =
        new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
      consumer.subscribe(List.of(topic));
      while (!done.test(out)) {
        if (System.nanoTime() > deadline) {
          throw new AssertionError("read " + out.size() + " records of " + topic + " in " + timeout
              + ", not what the test waits for");
        }
        consumer.poll(Duration.ofMillis(200)).forEach(out::add);
      }
    }
    return out;
  }

  /** The schemas.json registry records of {@code pipeline}, for a lakeless.schemas topic. */
  public static List<Out> schemaRecords(String pipeline) {
    List<Out> out = new ArrayList<>();
    for (var s : Vectors.read("schemas.json").path("schemas")) {
      if (s.path("pipeline").asText().equals(pipeline)) {
        out.add(Out.of(pipeline, s.path("registry_record").path("value").toString()
            .getBytes(StandardCharsets.UTF_8)));
      }
    }
    return out;
  }

  public static Map<String, String> none() {
    return Map.of();
  }
}
