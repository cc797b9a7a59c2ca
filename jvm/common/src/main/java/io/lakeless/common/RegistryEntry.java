package io.lakeless.common;

import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.msgpack.core.MessagePack;
import org.msgpack.core.MessageUnpacker;
import org.msgpack.value.ValueType;

/**
 * A record of lakeless.models (docs/data-contract.md section 5): a msgpack map whose kind is
 * "model" ({@link Model}) or "stage" ({@link StageChange}). Unknown fields are ignored.
 */
public sealed interface RegistryEntry permits RegistryEntry.Model, RegistryEntry.StageChange {
  String name();

  int version();

  int formatVersion();

  /** A registered model version. {@code onnx} is null when the bytes are at {@code uri}. */
  record Model(
      int formatVersion, String name, int version, String stage, long createdAt, String sha256,
      long size, String uri, byte[] onnx, String pipeline, String schemaFingerprint,
      List<String> features, Map<String, List<Double>> normalization, double threshold,
      String description) implements RegistryEntry {
    public String ref() {
      return name + ":" + version;
    }
  }

  /** Version {@code version} of model {@code name} moved to {@code stage} at {@code at}. */
  record StageChange(int formatVersion, String name, int version, String stage, long at)
      implements RegistryEntry {}

  /**
   * Decode a record value.
   *
   * @throws IllegalArgumentException not a registry record
   */
  static RegistryEntry decode(byte[] value) {
    Map<String, Object> map;
    try (MessageUnpacker unpacker = MessagePack.newDefaultUnpacker(value == null ? new byte[0] : value)) {
      Object root = unpack(unpacker);
      if (!(root instanceof Map<?, ?>)) {
        throw new IllegalArgumentException("not a registry record: not a msgpack map");
      }
      @SuppressWarnings("unchecked")
      Map<String, Object> m = (Map<String, Object>) root;
      map = m;
    } catch (IOException | RuntimeException e) {
      if (e instanceof IllegalArgumentException iae) {
        throw iae;
      }
      throw new IllegalArgumentException("not a registry record: " + e.getMessage(), e);
    }
    Object kind = map.get("kind");
    int formatVersion = (int) number(map, "format_version", true);
    String name = string(map, "name", true);
    int version = (int) number(map, "version", true);
    if ("stage".equals(kind)) {
      return new StageChange(formatVersion, name, version, string(map, "stage", true),
          number(map, "at", false));
    }
    if (!"model".equals(kind)) {
      throw new IllegalArgumentException("not a registry record: kind " + kind);
    }
    List<String> features = new ArrayList<>();
    if (map.get("features") instanceof List<?> list) {
      for (Object o : list) {
        features.add(String.valueOf(o));
      }
    }
    Map<String, List<Double>> normalization = null;
    if (map.get("normalization") instanceof Map<?, ?> norm) {
      normalization = new LinkedHashMap<>();
      for (Map.Entry<?, ?> e : norm.entrySet()) {
        List<Double> values = new ArrayList<>();
        if (e.getValue() instanceof List<?> l) {
          for (Object o : l) {
            values.add(((Number) o).doubleValue());
          }
        }
        normalization.put(String.valueOf(e.getKey()), values);
      }
    }
    Object threshold = map.get("threshold");
    return new Model(formatVersion, name, version, string(map, "stage", false),
        number(map, "created_at", false), string(map, "sha256", false), number(map, "size", false),
        string(map, "uri", false), map.get("onnx") instanceof byte[] b ? b : null,
        // format 1 records (before pipelines were declared) are the car fleet's
        map.get("pipeline") instanceof String p ? p : Pipeline.CAR_FLEET,
        string(map, "schema_fingerprint", false),
        List.copyOf(features), normalization,
        threshold instanceof Number n ? n.doubleValue() : Double.NaN,
        string(map, "description", false));
  }

  private static long number(Map<String, Object> map, String key, boolean required) {
    Object v = map.get(key);
    if (v instanceof Number n) {
      return n.longValue();
    }
    if (required) {
      throw new IllegalArgumentException("not a registry record: no integer " + key);
    }
    return 0;
  }

  private static String string(Map<String, Object> map, String key, boolean required) {
    Object v = map.get(key);
    if (v instanceof String s) {
      return s;
    }
    if (required) {
      throw new IllegalArgumentException("not a registry record: no string " + key);
    }
    return null;
  }

  /** msgpack to plain Java: Map, List, String, Long, Double, Boolean, byte[], null. */
  private static Object unpack(MessageUnpacker u) throws IOException {
    ValueType type = u.getNextFormat().getValueType();
    switch (type) {
      case NIL:
        u.unpackNil();
        return null;
      case BOOLEAN:
        return u.unpackBoolean();
      case INTEGER:
        return u.unpackLong();
      case FLOAT:
        return u.unpackDouble();
      case STRING:
        return u.unpackString();
      case BINARY:
        return u.readPayload(u.unpackBinaryHeader());
      case ARRAY: {
        int n = u.unpackArrayHeader();
        List<Object> list = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
          list.add(unpack(u));
        }
        return list;
      }
      case MAP: {
        int n = u.unpackMapHeader();
        Map<String, Object> map = new LinkedHashMap<>();
        for (int i = 0; i < n; i++) {
          Object k = unpack(u);
          map.put(String.valueOf(k), unpack(u));
        }
        return map;
      }
      default:
        u.skipValue();
        return null;
    }
  }
}
