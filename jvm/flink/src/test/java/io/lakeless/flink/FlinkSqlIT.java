package io.lakeless.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.lakeless.common.TestKafka;
import io.lakeless.common.Vectors;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.StatementSet;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.junit.jupiter.api.Test;

/**
 * One Flink job on a local MiniCluster against the real broker of -Dlakeless.test.bootstrap:
 * sensor-clean read with the lakeless-clean format, scored by ML_PREDICT with the registry's
 * live model (the scores of tests/vectors/stream.json, computed by Python's ONNX Runtime), the
 * anomalies filtered with WHERE anomaly, a promotion mid-job, and the talk's KSQL filter step on
 * raw JSON.
 */
class FlinkSqlIT {
  private static final ObjectMapper JSON = new ObjectMapper();

  @Test
  void mlPredictScoresLikePythonAndSwapsModels() throws Exception {
    String b = TestKafka.bootstrap();
    assumeTrue(b != null, "needs -D" + TestKafka.PROPERTY);
    JsonNode stream = Vectors.read("stream.json");
    JsonNode events = stream.path("events");
    List<String> features = Vectors.pipeline("car-fleet").current().featureNames();
    String schemas = TestKafka.topic("schemas", 1);
    String models = TestKafka.topic("models", 1);
    String clean = TestKafka.topic("clean", 1);
    String raw = TestKafka.topic("raw", 1);
    String scores = TestKafka.topic("scores", 1);
    String anomalies = TestKafka.topic("anomalies", 1);
    String hot = TestKafka.topic("hot", 1);
    TestKafka.produce(schemas, TestKafka.schemaRecords("car-fleet"));
    TestKafka.produce(models, List.of(TestKafka.entry("accept-v1"), TestKafka.entry("accept-v2")));
    int half = events.size() / 2;
    produceEvents(clean, raw, events, 0, half);

    TableEnvironment env = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
    env.getConfig().set("parallelism.default", "1");
    String featureColumns = features.stream().map(f -> f + " DOUBLE").collect(Collectors.joining(", "));
    String featureList = String.join(", ", features);
    env.executeSql("CREATE TABLE sensor_clean (car_id STRING, ts BIGINT, seq BIGINT, model STRING, "
        + featureColumns + ", failure STRING) WITH ('connector' = 'kafka', 'topic' = '" + clean
        + "', 'properties.bootstrap.servers' = '" + b + "', 'scan.startup.mode' = 'earliest-offset', "
        + "'format' = 'lakeless-clean', 'lakeless-clean.pipeline' = 'car-fleet', "
        + "'lakeless-clean.bootstrap.servers' = '" + b + "', 'lakeless-clean.schemas.topic' = '"
        + schemas + "')");
    env.executeSql("CREATE MODEL car_ae INPUT (" + featureColumns + ") OUTPUT (score DOUBLE, "
        + "anomaly BOOLEAN, model_version INT) WITH ('provider' = 'lakeless', 'bootstrap.servers' = '"
        + b + "', 'model' = 'car-autoencoder', 'models.topic' = '" + models + "', 'pipeline' = "
        + "'car-fleet', 'schemas.topic' = '" + schemas + "', 'registry.poll.ms' = '100')");
    env.executeSql(sink("scores_out", scores, "car_id STRING, ts BIGINT, seq BIGINT, score DOUBLE, "
        + "anomaly BOOLEAN, model_version INT"));
    env.executeSql(sink("anomalies_out", anomalies, "car_id STRING, ts BIGINT, seq BIGINT, "
        + "score DOUBLE, model_version INT, failure STRING"));
    env.executeSql("CREATE TABLE sensor_raw (car_id STRING, ts BIGINT, coolant_temp DOUBLE, "
        + "failure STRING) WITH ('connector' = 'kafka', 'topic' = '" + raw + "', "
        + "'properties.bootstrap.servers' = '" + b + "', 'scan.startup.mode' = 'earliest-offset', "
        + "'format' = 'json')");
    env.executeSql(sink("hot_out", hot, "car_id STRING, ts BIGINT, coolant_temp DOUBLE"));
    StatementSet set = env.createStatementSet();
    set.addInsertSql("INSERT INTO scores_out SELECT car_id, ts, seq, score, anomaly, model_version "
        + "FROM ML_PREDICT(TABLE sensor_clean, MODEL car_ae, DESCRIPTOR(" + featureList + "))");
    // The one statement a user writes: clean topic -> model -> anomalies.
    set.addInsertSql("INSERT INTO anomalies_out SELECT car_id, ts, seq, score, model_version, failure "
        + "FROM ML_PREDICT(TABLE sensor_clean, MODEL car_ae, DESCRIPTOR(" + featureList + ")) "
        + "WHERE anomaly");
    // The talk's KSQL filter step, on the raw JSON.
    set.addInsertSql("INSERT INTO hot_out SELECT car_id, ts, coolant_temp FROM sensor_raw "
        + "WHERE coolant_temp > 100");
    long started = System.nanoTime();
    TableResult job = set.execute();
    try {
      List<JsonNode> first = values(TestKafka.readUntil(scores, Duration.ofSeconds(40),
          r -> r.size() >= half));
      System.err.printf("first %d scores after %.1f s%n", half, (System.nanoTime() - started) / 1e9);
      TestKafka.produce(models, List.of(TestKafka.entry("promote-v2")));
      Thread.sleep(1500);
      produceEvents(clean, raw, events, half, events.size());
      List<JsonNode> all = values(TestKafka.readUntil(scores, Duration.ofSeconds(120),
          r -> r.size() >= events.size()));
      assertEquals(events.size(), all.size());
      Map<String, Integer> index = new HashMap<>();
      for (int i = 0; i < events.size(); i++) {
        index.put(id(JSON.readTree(events.get(i).path("json").asText())), i);
      }
      int lastVersion = 1;
      int anomalous = 0;
      for (JsonNode s : all) {
        int i = index.get(id(s));
        int version = s.path("model_version").asInt();
        double want = stream.path("scores").path(String.valueOf(version)).get(i).asDouble();
        assertEquals(want, s.path("score").asDouble(), 1e-5, "event " + i + " v" + version);
        assertEquals(want > 1.0, s.path("anomaly").asBoolean());
        if (i < half) {
          assertEquals(1, version, "before the promotion");
        } else {
          assertTrue(version >= lastVersion, "versions only move forward");
          lastVersion = version;
        }
        anomalous += want > 1.0 ? 1 : 0;
      }
      assertEquals(2, lastVersion, "the promotion reached the running job");
      int expectAnomalies = anomalous;
      List<JsonNode> found = values(TestKafka.readUntil(anomalies, Duration.ofSeconds(60),
          r -> r.size() >= expectAnomalies));
      assertEquals(anomalous, found.size());
      for (JsonNode a : found) {
        assertTrue(a.path("score").asDouble() > 1.0);
        assertTrue(a.path("failure").isTextual(), "the anomalies of stream.json are labelled");
      }
      long hotEvents = 0;
      for (JsonNode e : events) {
        hotEvents += JSON.readTree(e.path("json").asText()).path("coolant_temp").asDouble() > 100 ? 1 : 0;
      }
      long expectHot = hotEvents;
      List<JsonNode> filtered = values(TestKafka.readUntil(hot, Duration.ofSeconds(60),
          r -> r.size() >= expectHot));
      assertEquals(hotEvents, filtered.size());
      filtered.forEach(h -> assertTrue(h.path("coolant_temp").asDouble() > 100));
      System.err.printf("flink job checked after %.1f s: %d scores, %d anomalies, %d hot%n",
          (System.nanoTime() - started) / 1e9, all.size(), found.size(), filtered.size());
    } finally {
      job.getJobClient().orElseThrow().cancel().get();
    }
  }

  private static String sink(String table, String topic, String columns) {
    return "CREATE TABLE " + table + " (" + columns + ") WITH ('connector' = 'kafka', 'topic' = '"
        + topic + "', 'properties.bootstrap.servers' = '" + TestKafka.bootstrap()
        + "', 'format' = 'json')";
  }

  private static String id(JsonNode n) {
    return n.path("car_id").asText() + "/" + n.path("seq").asLong();
  }

  private static void produceEvents(String clean, String raw, JsonNode events, int from, int to)
      throws Exception {
    List<TestKafka.Out> c = new ArrayList<>();
    List<TestKafka.Out> r = new ArrayList<>();
    for (int i = from; i < to; i++) {
      JsonNode e = events.get(i);
      byte[] key = e.path("key").asText().getBytes(StandardCharsets.UTF_8);
      c.add(new TestKafka.Out(key, Vectors.hex(e.path("clean_hex").asText()), e.path("timestamp").asLong(), List.of()));
      r.add(new TestKafka.Out(key, e.path("json").asText().getBytes(StandardCharsets.UTF_8),
          e.path("timestamp").asLong(), List.of()));
    }
    TestKafka.produce(clean, c);
    TestKafka.produce(raw, r);
  }

  private static List<JsonNode> values(List<ConsumerRecord<byte[], byte[]>> records) throws Exception {
    List<JsonNode> out = new ArrayList<>();
    for (ConsumerRecord<byte[], byte[]> r : records) {
      out.add(JSON.readTree(r.value()));
    }
    return out;
  }
}
