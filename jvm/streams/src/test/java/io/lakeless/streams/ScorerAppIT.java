package io.lakeless.streams;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.lakeless.common.TestKafka;
import io.lakeless.common.Vectors;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.streams.KafkaStreams;
import org.junit.jupiter.api.Test;

/** The batched scorer app against the real broker of -Dlakeless.test.bootstrap. */
class ScorerAppIT {
  private static final ObjectMapper JSON = new ObjectMapper();

  @Test
  void scoresAPrefilledTopicLikePython() throws Exception {
    assumeTrue(TestKafka.bootstrap() != null, "needs -D" + TestKafka.PROPERTY);
    JsonNode stream = Vectors.read("stream.json");
    JsonNode events = stream.path("events");
    String schemas = TestKafka.topic("schemas", 1);
    String models = TestKafka.topic("models", 1);
    String clean = TestKafka.topic("clean", 2);
    String anomalies = TestKafka.topic("anomalies", 1);
    String scores = TestKafka.topic("scores", 1);
    TestKafka.produce(schemas, TestKafka.schemaRecords("car-fleet"));
    TestKafka.produce(models, List.of(TestKafka.entry("accept-v1")));
    List<TestKafka.Out> records = new ArrayList<>();
    Map<String, Integer> index = new HashMap<>();
    for (int i = 0; i < events.size(); i++) {
      JsonNode e = events.get(i);
      records.add(new TestKafka.Out(e.path("key").asText().getBytes(StandardCharsets.UTF_8),
          Vectors.hex(e.path("clean_hex").asText()), e.path("timestamp").asLong(), List.of()));
      JsonNode json = JSON.readTree(e.path("json").asText());
      index.put(json.path("car_id").asText() + "/" + json.path("seq").asLong(), i);
    }
    TestKafka.produce(clean, records);

    Properties props = new Properties();
    props.setProperty("bootstrap.servers", TestKafka.bootstrap());
    props.setProperty("application.id", "lakeless-it-" + clean);
    props.setProperty("state.dir", Files.createTempDirectory("streams-it").toString());
    props.setProperty("consumer.auto.offset.reset", "earliest");
    props.setProperty("lakeless.schemas.topic", schemas);
    props.setProperty("lakeless.models.topic", models);
    props.setProperty("lakeless.topic.clean", clean);
    props.setProperty("lakeless.topic.anomalies", anomalies);
    props.setProperty("lakeless.topic.scores", scores);
    props.setProperty("lakeless.batch.size", "64");
    props.setProperty("lakeless.batch.ms", "50");
    props.setProperty("lakeless.all.scores", "true");
    KafkaStreams app = ScorerApp.start(props, new AtomicLong());
    try {
      List<ConsumerRecord<byte[], byte[]>> out = TestKafka.readUntil(scores, Duration.ofSeconds(90),
          r -> r.size() >= events.size());
      assertEquals(events.size(), out.size());
      int anomalous = 0;
      for (ConsumerRecord<byte[], byte[]> r : out) {
        JsonNode s = JSON.readTree(r.value());
        int i = index.get(s.path("car_id").asText() + "/" + s.path("seq").asLong());
        assertEquals(stream.path("scores").path("1").get(i).asDouble(), s.path("score").asDouble(), 1e-5);
        assertEquals(s.path("car_id").asText(), new String(r.key(), StandardCharsets.UTF_8));
        anomalous += s.path("anomaly").asBoolean() ? 1 : 0;
      }
      int expected = anomalous;
      List<ConsumerRecord<byte[], byte[]>> found = TestKafka.readUntil(anomalies,
          Duration.ofSeconds(30), r -> r.size() >= expected);
      assertEquals(anomalous, found.size());
      for (ConsumerRecord<byte[], byte[]> r : found) {
        JsonNode a = JSON.readTree(r.value());
        assertEquals(3, a.path("top_features").size());
        assertEquals(clean, a.path("source").asText().replaceAll("\\[.*", ""));
      }
    } finally {
      app.close(Duration.ofSeconds(20));
    }
  }
}
