package io.lakeless.common;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The JVM side of the contract checked against tests/vectors (the spec, not a copy of it). */
class VectorsTest {
  @Test
  void fingerprintsRolesAndLayoutSizes() {
    for (JsonNode s : Vectors.read("schemas.json").path("schemas")) {
      PipelineSchema schema = PipelineSchema.parse(s.path("registry_record").path("value").path("schema"));
      String where = s.path("pipeline").asText() + " v" + s.path("version").asInt();
      assertEquals(s.path("fingerprint").asText(), schema.fingerprintHex(), where);
      assertEquals(s.path("fingerprint_value").asText(), String.format("%016x", schema.fingerprint()), where);
      assertEquals(s.path("canonical_form").asText(),
          org.apache.avro.SchemaNormalization.toParsingForm(schema.avro()), where);
      byte[] header = java.nio.ByteBuffer.allocate(9).order(java.nio.ByteOrder.LITTLE_ENDIAN)
          .put(CleanDecoder.LAYOUT_VERSION).putLong(schema.fingerprint()).array();
      assertEquals(s.path("header_hex").asText(), HexFormat.of().formatHex(header), where);
      assertEquals(Vectors.strings(s.path("features")), schema.featureNames(), where);
      assertEquals(Vectors.strings(s.path("strings")),
          schema.strings().stream().map(PipelineSchema.Field::name).toList(), where);
      assertEquals(s.path("numeric_size").asInt(), schema.numericSize(), where);
      JsonNode roles = s.path("roles");
      assertEquals(roles.path("key").asText(), schema.key());
      assertEquals(roles.path("time").asText(), schema.time());
      assertEquals(roles.path("sequence").isNull() ? null : roles.path("sequence").asText(), schema.sequence());
      assertEquals(roles.path("label").isNull() ? null : roles.path("label").asText(), schema.label());
    }
  }

  @Test
  void schemaRegistryFoldsVersions() {
    Pipeline turbines = Vectors.pipeline("turbines");
    assertEquals(2, turbines.currentVersion());
    assertEquals(List.of(1, 2), new ArrayList<>(turbines.versions().keySet()));
    assertEquals("turbines.clean", turbines.topic("clean"));
    Pipeline cars = Vectors.pipeline("car-fleet");
    assertEquals("sensor-clean", cars.topic("clean"));
    assertEquals("car-autoencoder", cars.model());
  }

  @Test
  void cleanLayoutDecodes() {
    JsonNode doc = Vectors.read("clean.json");
    int checked = 0;
    for (JsonNode c : doc.path("cases")) {
      Pipeline pipeline = Vectors.pipeline(c.path("pipeline").asText());
      CleanDecoder decoder = new CleanDecoder(pipeline, c.path("reader_version").asInt());
      CleanRecord r = decoder.decode(Vectors.hex(c.path("clean_hex").asText()));
      JsonNode want = c.path("decoded");
      String where = c.path("json").asText();
      assertEquals(c.path("writer_version").asInt(), r.writerVersion(), where);
      assertEquals(want.path("time").asLong(), r.time(), where);
      assertEquals(want.path("sequence").isNull() ? null : want.path("sequence").asLong(), r.sequence(), where);
      List<String> names = decoder.reader().featureNames();
      double[] features = new double[names.size()];
      for (int i = 0; i < features.length; i++) {
        features[i] = want.path("features").path(names.get(i)).asDouble();
      }
      assertArrayEquals(features, r.features(), 0.0, where);
      List<PipelineSchema.Field> strings = decoder.reader().strings();
      for (int i = 0; i < strings.size(); i++) {
        JsonNode s = want.path("strings").path(strings.get(i).name());
        assertEquals(s.isNull() ? null : s.asText(), r.strings()[i], where);
      }
      assertEquals(c.path("key").asText(), r.key());
      checked++;
    }
    assertEquals(doc.path("cases").size(), checked);
    for (JsonNode e : doc.path("errors")) {
      CleanDecoder decoder = new CleanDecoder(Vectors.pipeline(e.path("pipeline").asText()));
      CleanFormatException err = assertThrows(CleanFormatException.class,
          () -> decoder.decode(Vectors.hex(e.path("clean_hex").asText())), e.path("description").asText());
      assertEquals(e.path("reason").asText(), err.reason(), e.path("description").asText());
    }
  }

  @Test
  void modelRecordsReachTheirVerdicts() {
    for (JsonNode r : Vectors.read("registry.json").path("records")) {
      RegistryEntry.Model model = (RegistryEntry.Model) RegistryEntry.decode(
          Vectors.base64(r.path("value_b64").asText()));
      String verdict = ModelValidator.verdict(model, r.path("pipeline").asText(),
          Vectors.strings(r.path("pipeline_features")));
      assertEquals(r.path("verdict").asText(), verdict == null ? "accept" : verdict, r.path("id").asText());
    }
  }

  @Test
  void registryLogFolds() {
    JsonNode doc = Vectors.read("registry.json");
    String name = doc.path("model").asText();
    for (JsonNode fold : doc.path("folds")) {
      RegistryState state = new RegistryState();
      List<String> log = Vectors.strings(fold.path("log"));
      for (int i = 0; i < log.size(); i++) {
        state.apply(Vectors.entry(log.get(i)), "registry.json@" + i);
        JsonNode want = fold.path("live_after_each").get(i);
        assertEquals(want.isNull() ? null : want.asInt(), state.liveVersion(name),
            fold.path("description").asText() + " after " + log.get(i));
      }
      fold.path("stages").fields().forEachRemaining(e -> assertEquals(e.getValue().asText(),
          state.stage(name, Integer.parseInt(e.getKey())), fold.path("description").asText()));
    }
  }

  @Test
  void scoresMatchPythonOnnxRuntime() throws Exception {
    JsonNode doc = Vectors.read("stream.json");
    CleanDecoder decoder = new CleanDecoder(Vectors.pipeline(doc.path("pipeline").asText()));
    JsonNode events = doc.path("events");
    int n = decoder.reader().features().size();
    float[] flat = new float[events.size() * n];
    for (int i = 0; i < events.size(); i++) {
      double[] f = decoder.decode(Vectors.hex(events.get(i).path("clean_hex").asText())).features();
      for (int j = 0; j < n; j++) {
        flat[i * n + j] = (float) f[j];
      }
    }
    for (String id : List.of("accept-v1", "accept-v2")) {
      RegistryEntry.Model model = (RegistryEntry.Model) Vectors.entry(id);
      try (LiveModel live = ModelValidator.load(model, "car-fleet", decoder.reader().featureNames())) {
        OnnxScorer.Result result = live.scorer().score(flat, events.size());
        JsonNode want = doc.path("scores").path(String.valueOf(model.version()));
        for (int i = 0; i < events.size(); i++) {
          assertEquals(want.get(i).asDouble(), result.scores()[i], 1e-5, id + " event " + i);
        }
        JsonNode errors = doc.path("feature_errors_first_16").path(String.valueOf(model.version()));
        for (int i = 0; i < errors.size(); i++) {
          for (int j = 0; j < n; j++) {
            assertEquals(errors.get(i).get(j).asDouble(), result.errors()[i * n + j], 1e-5);
          }
        }
      }
    }
  }

  @Test
  void trackerRefusesABadPromotionAndFallsBackAtStartUp() {
    List<String> features = Vectors.pipeline("car-fleet").current().featureNames();
    ModelTracker running = new ModelTracker("car-autoencoder", "car-fleet", features);
    for (String id : List.of("accept-v1", "threshold-nan")) {
      running.apply(Vectors.entryBytes(id), id);
    }
    running.start();
    assertEquals(1, running.current().version());
    running.apply(Vectors.entryBytes("promote-threshold-nan-v7"), "promote");
    assertEquals(false, running.maybePoll());
    assertEquals(1, running.current().version());
    assertEquals("threshold", running.refused().get(7).reason());
    running.close();
    // A scorer started after the refused promotion scores with the last valid live version.
    ModelTracker restarted = new ModelTracker("car-autoencoder", "car-fleet", features);
    for (String id : List.of("accept-v1", "threshold-nan", "promote-threshold-nan-v7")) {
      restarted.apply(Vectors.entryBytes(id), id);
    }
    restarted.start();
    assertEquals(1, restarted.current().version());
    assertEquals(7, restarted.state().liveVersion("car-autoencoder"));
    restarted.close();
  }

  @Test
  void unknownRecordIsRefused() {
    assertThrows(IllegalArgumentException.class, () -> RegistryEntry.decode(new byte[] {1, 2, 3}));
    assertNull(new SchemaRegistry().pipelines().get("x"));
  }
}
