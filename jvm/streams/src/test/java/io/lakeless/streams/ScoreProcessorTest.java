package io.lakeless.streams;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.lakeless.common.ModelTracker;
import io.lakeless.common.Pipeline;
import io.lakeless.common.Vectors;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.streams.TestInputTopic;
import org.apache.kafka.streams.TestOutputTopic;
import org.apache.kafka.streams.TopologyTestDriver;
import org.apache.kafka.streams.test.TestRecord;
import org.junit.jupiter.api.Test;

/** The scorer topology on TopologyTestDriver with the vectors' real ONNX models. */
class ScoreProcessorTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private final JsonNode stream = Vectors.read("stream.json");
  private final Pipeline pipeline = Vectors.pipeline("car-fleet");

  private record Run(List<JsonNode> anomalies, List<JsonNode> scores) {}

  private static Properties settings(int batchSize) {
    Properties p = new Properties();
    p.setProperty("lakeless.batch.size", String.valueOf(batchSize));
    p.setProperty("lakeless.batch.ms", "100");
    p.setProperty("lakeless.all.scores", "true");
    return p;
  }

  /** Pipe events [from, to) of stream.json; between them, run {@code between}. */
  private Run run(int batchSize, ModelTracker tracker, int swapAt, Runnable atSwap) {
    ScorerApp.Settings s = ScorerApp.Settings.from(settings(batchSize));
    Properties config = new Properties();
    config.setProperty("application.id", "test");
    config.setProperty("bootstrap.servers", "unused:9092");
    List<JsonNode> anomalies = new ArrayList<>();
    List<JsonNode> scores = new ArrayList<>();
    try (TopologyTestDriver driver = new TopologyTestDriver(
        ScorerApp.topology(pipeline, s, () -> tracker, new AtomicLong()), config)) {
      TestInputTopic<byte[], byte[]> in = driver.createInputTopic("sensor-clean",
          new ByteArraySerializer(), new ByteArraySerializer());
      TestOutputTopic<byte[], byte[]> outA = driver.createOutputTopic("anomalies",
          new ByteArrayDeserializer(), new ByteArrayDeserializer());
      TestOutputTopic<byte[], byte[]> outS = driver.createOutputTopic("scores",
          new ByteArrayDeserializer(), new ByteArrayDeserializer());
      JsonNode events = stream.path("events");
      for (int i = 0; i < events.size(); i++) {
        if (i == swapAt) {
          driver.advanceWallClockTime(Duration.ofMillis(150));
          atSwap.run();
        }
        JsonNode e = events.get(i);
        in.pipeInput(new TestRecord<>(e.path("key").asText().getBytes(StandardCharsets.UTF_8),
            Vectors.hex(e.path("clean_hex").asText()), null, e.path("timestamp").asLong()));
      }
      driver.advanceWallClockTime(Duration.ofMillis(150));
      for (TestRecord<byte[], byte[]> r : outA.readRecordsToList()) {
        anomalies.add(parse(r.value()));
      }
      for (TestRecord<byte[], byte[]> r : outS.readRecordsToList()) {
        scores.add(parse(r.value()));
      }
    }
    return new Run(anomalies, scores);
  }

  private static JsonNode parse(byte[] value) {
    try {
      return JSON.readTree(value);
    } catch (java.io.IOException e) {
      throw new IllegalStateException(e);
    }
  }

  private ModelTracker tracker(String... ids) {
    ModelTracker tracker = new ModelTracker("car-autoencoder", "car-fleet",
        pipeline.current().featureNames());
    feed(tracker, ids);
    tracker.start();
    return tracker;
  }

  private static void feed(ModelTracker tracker, String... ids) {
    for (String id : ids) {
      tracker.apply(Vectors.entryBytes(id), id);
    }
  }

  private void checkScores(Run run, int swapAt, int after) {
    JsonNode events = stream.path("events");
    assertEquals(events.size(), run.scores().size());
    int anomalies = 0;
    for (int i = 0; i < events.size(); i++) {
      JsonNode s = run.scores().get(i);
      int version = i < swapAt ? 1 : after;
      double want = stream.path("scores").path(String.valueOf(version)).get(i).asDouble();
      JsonNode event = parse(events.get(i).path("json").asText().getBytes(StandardCharsets.UTF_8));
      assertEquals(event.path("car_id").asText(), s.path("car_id").asText());
      assertEquals(event.path("ts").asLong(), s.path("ts").asLong());
      assertEquals(event.path("seq").asLong(), s.path("seq").asLong());
      assertEquals(want, s.path("score").asDouble(), 1e-5, "event " + i);
      assertEquals(version, s.path("model_version").asInt(), "event " + i);
      assertEquals(want > 1.0, s.path("anomaly").asBoolean());
      if (want > 1.0) {
        JsonNode a = run.anomalies().get(anomalies++);
        assertEquals(s.path("score").asDouble(), a.path("score").asDouble(), 0.0);
        assertEquals("sensor-clean[0]@" + i, a.path("source").asText());
        assertEquals(3, a.path("top_features").size());
        assertEquals(event.path("failure"), a.path("failure"));
        assertTrue(a.has("failure"));
      }
    }
    assertEquals(anomalies, run.anomalies().size());
  }

  @Test
  void perRecordScoresEqualPythonsAndSwapsOnPromotion() {
    ModelTracker tracker = tracker("accept-v1", "accept-v2");
    Run run = run(1, tracker, 100, () -> feed(tracker, "promote-v2"));
    checkScores(run, 100, 2);
  }

  @Test
  void batchedScoresEqualPerRecord() {
    ModelTracker tracker = tracker("accept-v1", "accept-v2");
    // 50 a batch: the swap lands between two batches (events 100..), the tail by punctuation.
    Run run = run(50, tracker, 100, () -> feed(tracker, "promote-v2"));
    checkScores(run, 100, 2);
  }

  @Test
  void refusedPromotionKeepsTheOldModel() {
    ModelTracker tracker = tracker("accept-v1", "threshold-nan");
    Run run = run(1, tracker, 100, () -> feed(tracker, "promote-threshold-nan-v7"));
    checkScores(run, 100, 1);
    assertEquals("threshold", tracker.refused().get(7).reason());
    assertFalse(tracker.refused().containsKey(1));
  }

  @Test
  void topFeaturesNameTheLargestErrors() {
    ModelTracker tracker = tracker("accept-v1");
    Run run = run(1, tracker, -1, () -> {});
    JsonNode a = run.anomalies().get(0);
    double previous = Double.MAX_VALUE;
    for (JsonNode t : a.path("top_features")) {
      assertTrue(t.path("error").asDouble() <= previous);
      previous = t.path("error").asDouble();
    }
  }
}
