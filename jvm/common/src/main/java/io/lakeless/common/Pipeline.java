package io.lakeless.common;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * A pipeline: its registered schema versions in offset order (the latest is current), its topics
 * and its model name (docs/data-contract.md section 2).
 */
public final class Pipeline {
  /** The built-in pipeline's name, with the legacy topic names. */
  public static final String CAR_FLEET = "car-fleet";

  private final String name;
  private final Map<String, String> topics;
  private final String model;
  private final Map<Integer, PipelineSchema> versions = new LinkedHashMap<>();
  private int current;

  public Pipeline(String name, Map<String, String> topics, String model) {
    this.name = name;
    this.topics = Map.copyOf(topics);
    this.model = model;
  }

  /** A pipeline of one version read from an .avsc file (no registry needed). */
  public static Pipeline fromFile(String name, Path avsc) throws IOException {
    Pipeline pipeline = new Pipeline(name, defaultTopics(name), defaultModel(name));
    pipeline.add(1, PipelineSchema.read(avsc));
    return pipeline;
  }

  /** NAME.raw ... NAME.scores, or the legacy names of car-fleet. */
  public static Map<String, String> defaultTopics(String name) {
    Map<String, String> topics = new LinkedHashMap<>();
    for (String t : List.of("raw", "clean", "dlq", "anomalies", "scores")) {
      String legacy = t.equals("anomalies") || t.equals("scores") ? t : "sensor-" + t;
      topics.put(t, CAR_FLEET.equals(name) ? legacy : name + "." + t);
    }
    return topics;
  }

  public static String defaultModel(String name) {
    return CAR_FLEET.equals(name) ? "car-autoencoder" : name + "-autoencoder";
  }

  /** The same pipeline with some topics renamed (role -> topic). */
  public Pipeline withTopics(Map<String, String> renamed) {
    Map<String, String> merged = new LinkedHashMap<>(topics);
    merged.putAll(renamed);
    Pipeline p = new Pipeline(name, merged, model);
    p.versions.putAll(versions);
    p.current = current;
    return p;
  }

  /** Fold one registry record value (the JSON object of lakeless.schemas). */
  void apply(JsonNode value) {
    add(value.path("version").asInt(), PipelineSchema.parse(value.path("schema")));
  }

  void add(int version, PipelineSchema schema) {
    versions.putIfAbsent(version, schema);
    current = version;
  }

  public String name() {
    return name;
  }

  /** The topic of a role: raw, clean, dlq, anomalies, scores. */
  public String topic(String role) {
    String topic = topics.get(role);
    if (topic == null) {
      throw new IllegalArgumentException("pipeline " + name + " has no " + role + " topic");
    }
    return topic;
  }

  public String model() {
    return model;
  }

  public int currentVersion() {
    return current;
  }

  public PipelineSchema current() {
    return versions.get(current);
  }

  public Map<Integer, PipelineSchema> versions() {
    return versions;
  }

  /** The registered version with this fingerprint, or null. */
  public Integer versionOf(long fingerprint) {
    for (Map.Entry<Integer, PipelineSchema> e : versions.entrySet()) {
      if (e.getValue().fingerprint() == fingerprint) {
        return e.getKey();
      }
    }
    return null;
  }

  /** "v1 = 0123456789abcdef, v2 = ..." for error messages. */
  public String describeVersions() {
    return versions.entrySet().stream()
        .map(e -> "v" + e.getKey() + " = " + e.getValue().fingerprintHex())
        .collect(Collectors.joining(", "));
  }

  static List<String> names(Map<String, Pipeline> pipelines) {
    return new ArrayList<>(pipelines.keySet());
  }
}
