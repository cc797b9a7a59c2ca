package io.lakeless.connect;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.lakeless.common.Vectors;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.errors.DataException;
import org.junit.jupiter.api.Test;

/** The converter on the vectors: clean records, anomalies and scores of both pipelines. */
class LakelessConverterTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  private static LakelessConverter converter(String pipeline, String file) {
    LakelessConverter c = new LakelessConverter();
    c.configure(Map.of("pipeline", pipeline, "schema.file", Vectors.dir().resolve(file).toString()), false);
    return c;
  }

  @Test
  void cleanRecordsBecomeStructsOfTheSchemasFields() throws Exception {
    LakelessConverter cars = converter("car-fleet", "car-fleet.avsc");
    for (JsonNode c : Vectors.read("clean.json").path("cases")) {
      if (!c.path("pipeline").asText().equals("car-fleet")) {
        continue;
      }
      SchemaAndValue sv = cars.toConnectData("sensor-clean", Vectors.hex(c.path("clean_hex").asText()));
      Struct s = (Struct) sv.value();
      JsonNode event = JSON.readTree(c.path("json").asText());
      assertEquals(23, sv.schema().fields().size());
      for (Field f : sv.schema().fields()) {
        JsonNode want = event.get(f.name());
        Object got = s.get(f);
        if (want == null || want.isNull()) {
          assertNull(got, f.name());
        } else if (f.schema().type() == Schema.Type.FLOAT64) {
          assertEquals(want.asDouble(), (double) got, 0.0, f.name());
        } else if (f.schema().type() == Schema.Type.INT64) {
          assertEquals(want.asLong(), (long) got, f.name());
        } else {
          assertEquals(want.asText(), got, f.name());
        }
      }
    }
  }

  @Test
  void olderVersionsComeOutInTheCurrentVersionsTerms() {
    LakelessConverter turbines = converter("turbines", "turbines-v2.avsc");
    JsonNode v2 = null;
    for (JsonNode c : Vectors.read("clean.json").path("cases")) {
      if (c.path("writer_version").asInt() == 2) {
        v2 = c;
      }
    }
    Struct s = (Struct) turbines.toConnectData("turbines.clean", Vectors.hex(v2.path("clean_hex").asText())).value();
    assertEquals(61.5, s.getFloat64("gearbox_temp"), 0.0);
    assertEquals(0.0, s.getFloat64("brake_engaged"), 0.0);
    assertEquals("NORDWIND", s.getString("vendor"));
    assertEquals("ok", s.getString("condition"));
  }

  @Test
  void anomaliesAndScoresFollowTheContract() throws Exception {
    LakelessConverter cars = converter("car-fleet", "car-fleet.avsc");
    LakelessConverter turbines = converter("turbines", "turbines-v1.avsc");
    for (JsonNode e : Vectors.read("outputs.json").path("examples")) {
      LakelessConverter c = e.path("pipeline").asText().equals("car-fleet") ? cars : turbines;
      String topic = e.path("pipeline").asText().equals("car-fleet")
          ? e.path("kind").asText().equals("anomaly") ? "anomalies" : "scores"
          : "turbines." + (e.path("kind").asText().equals("anomaly") ? "anomalies" : "scores");
      JsonNode value = e.path("value");
      SchemaAndValue sv = c.toConnectData(topic, JSON.writeValueAsBytes(value));
      Struct s = (Struct) sv.value();
      assertEquals(Vectors.strings(e.path("fields")),
          sv.schema().fields().stream().map(Field::name).toList());
      assertEquals(value.path("score").asDouble(), s.getFloat64("score"), 0.0);
      assertEquals(value.path("model_version").asInt(), s.getInt32("model_version"));
      if (value.has("top_features")) {
        assertEquals(value.path("top_features"), JSON.readTree(s.getString("top_features")));
      }
    }
  }

  @Test
  void keysAreStringsAndUnknownTopicsAreRefused() {
    LakelessConverter key = new LakelessConverter();
    key.configure(Map.of(), true);
    assertEquals("car-7", key.toConnectData("sensor-clean", "car-7".getBytes(StandardCharsets.UTF_8)).value());
    LakelessConverter cars = converter("car-fleet", "car-fleet.avsc");
    assertThrows(DataException.class, () -> cars.toConnectData("elsewhere", new byte[] {2}));
    JsonNode bad = Vectors.read("clean.json").path("errors").get(0);
    assertThrows(DataException.class,
        () -> cars.toConnectData("sensor-clean", Vectors.hex(bad.path("clean_hex").asText())));
  }
}
