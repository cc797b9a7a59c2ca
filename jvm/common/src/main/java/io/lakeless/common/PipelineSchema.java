package io.lakeless.common;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;

/**
 * One version of a pipeline's schema (docs/data-contract.md section 1): the Avro record schema
 * with its lakeless roles, the features in schema order and the strings of the clean layout.
 */
public final class PipelineSchema {
  static final ObjectMapper JSON = new ObjectMapper();
  private static final Set<String> NUMERIC = Set.of("int", "long", "float", "double", "boolean");

  /** A schema field as the clean layout and the engines see it. */
  public record Field(String name, String type, JsonNode defaultValue, boolean nullable) {}

  private final JsonNode json;
  private final Schema avro;
  private final long fingerprint;
  private final String key;
  private final String time;
  private final String sequence;
  private final String label;
  private final List<String> context;
  private final List<Field> fields;
  private final List<Field> features = new ArrayList<>();
  private final List<Field> strings = new ArrayList<>();

  private PipelineSchema(JsonNode json) {
    this.json = json;
    this.avro = new Schema.Parser().setValidateDefaults(true).parse(json.toString());
    if (avro.getType() != Schema.Type.RECORD) {
      throw new IllegalArgumentException("a pipeline schema is an Avro record, not " + avro.getType());
    }
    this.fingerprint = SchemaNormalization.parsingFingerprint64(avro);
    JsonNode roles = json.path("lakeless");
    if (!roles.isObject()) {
      throw new IllegalArgumentException("schema " + avro.getFullName() + " has no lakeless attribute");
    }
    this.key = text(roles, "key");
    this.time = text(roles, "time");
    this.sequence = text(roles, "sequence");
    this.label = text(roles, "label");
    List<String> contexts = new ArrayList<>();
    roles.path("context").forEach(n -> contexts.add(n.asText()));
    this.context = List.copyOf(contexts);
    if (key == null || time == null) {
      throw new IllegalArgumentException("the lakeless attribute needs key and time");
    }
    List<Field> all = new ArrayList<>();
    for (JsonNode f : json.path("fields")) {
      all.add(field(f));
    }
    this.fields = List.copyOf(all);
    Set<String> skip = new HashSet<>();
    skip.add(key);
    skip.add(time);
    if (sequence != null) {
      skip.add(sequence);
    }
    for (Field f : fields) {
      if (!skip.contains(f.name()) && NUMERIC.contains(f.type())) {
        features.add(f);
      }
    }
    strings.add(field(key));
    for (Field f : fields) {
      if (context.contains(f.name())) {
        strings.add(f);
      }
    }
    if (label != null) {
      strings.add(field(label));
    }
  }

  private static Field field(JsonNode f) {
    JsonNode type = f.path("type");
    boolean nullable = false;
    if (type.isArray()) {
      JsonNode branch = null;
      for (JsonNode t : type) {
        if ("null".equals(t.asText(null))) {
          nullable = true;
        } else {
          branch = t;
        }
      }
      type = branch;
    }
    String name = type == null ? "null" : type.isObject() ? type.path("type").asText() : type.asText();
    if (List.of("record", "array", "map", "bytes", "fixed").contains(name)) {
      throw new IllegalArgumentException("field " + f.path("name").asText() + ": type " + name
          + " is not supported by lakeless");
    }
    return new Field(f.path("name").asText(), name, f.get("default"), nullable);
  }

  private static String text(JsonNode node, String name) {
    JsonNode v = node.get(name);
    return v == null || v.isNull() ? null : v.asText();
  }

  /** Parse an .avsc document (with its lakeless attributes). */
  public static PipelineSchema parse(JsonNode avsc) {
    return new PipelineSchema(avsc);
  }

  /** Parse an .avsc text. */
  public static PipelineSchema parse(String avsc) {
    try {
      return new PipelineSchema(JSON.readTree(avsc));
    } catch (IOException e) {
      throw new IllegalArgumentException("not a JSON schema: " + e.getMessage(), e);
    }
  }

  /** Read an .avsc file. */
  public static PipelineSchema read(Path file) throws IOException {
    return parse(Files.readString(file));
  }

  /**
   * The fingerprint as the contract writes it: its 8 bytes as Avro writes them (little-endian),
   * in hex, which is what fastavro prints (not {@code %016x} of the value).
   */
  public static String hex(long fingerprint) {
    return String.format(Locale.ROOT, "%016x", Long.reverseBytes(fingerprint));
  }

  public Field field(String name) {
    for (Field f : fields) {
      if (f.name().equals(name)) {
        return f;
      }
    }
    throw new IllegalArgumentException("schema " + avro.getFullName() + " has no field " + name);
  }

  public JsonNode json() {
    return json;
  }

  public Schema avro() {
    return avro;
  }

  public long fingerprint() {
    return fingerprint;
  }

  public String fingerprintHex() {
    return hex(fingerprint);
  }

  public String key() {
    return key;
  }

  public String time() {
    return time;
  }

  /** The sequence field, or null. */
  public String sequence() {
    return sequence;
  }

  /** The label field, or null. */
  public String label() {
    return label;
  }

  public List<String> context() {
    return context;
  }

  public List<Field> fields() {
    return fields;
  }

  /** The model inputs, in schema order. */
  public List<Field> features() {
    return features;
  }

  public List<String> featureNames() {
    return features.stream().map(Field::name).toList();
  }

  /** The strings of the clean layout: the key, the context fields in schema order, the label. */
  public List<Field> strings() {
    return strings;
  }

  /** Bytes before the first string: version, fingerprint, time, sequence, features. */
  public int numericSize() {
    return 17 + (sequence == null ? 0 : 8) + 8 * features.size();
  }
}
