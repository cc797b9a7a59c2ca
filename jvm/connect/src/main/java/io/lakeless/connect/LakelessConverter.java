package io.lakeless.connect;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.lakeless.common.CleanDecoder;
import io.lakeless.common.CleanFormatException;
import io.lakeless.common.CleanRecord;
import io.lakeless.common.Pipeline;
import io.lakeless.common.PipelineSchema;
import io.lakeless.common.RegistryFollower;
import io.lakeless.common.SchemaRegistry;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.data.SchemaBuilder;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.storage.Converter;

/**
 * A Kafka Connect converter for lakeless' topics: NAME.clean (clean layout v2), NAME.anomalies
 * and NAME.scores (JSON) become Structs whose schema derives from the pipeline's schema, so any
 * sink connector can write them; as a key converter it yields the entity id as a string.
 *
 * <p>Settings (prefixed {@code value.converter.} in a connector): {@code pipeline} (default
 * car-fleet); {@code schema.file} (an .avsc) or {@code bootstrap.servers} (read
 * lakeless.schemas; {@code schemas.topic}, client settings as {@code kafka.*}); {@code
 * topic.clean}, {@code topic.anomalies}, {@code topic.scores} when the topics are not the
 * pipeline's own. Clean records of older schema versions come out in the current version's terms
 * (fields added since take their defaults). top_features (a list) comes as its JSON text.
 */
public final class LakelessConverter implements Converter {
  private static final ObjectMapper JSON = new ObjectMapper();

  private boolean isKey;
  private Pipeline pipeline;
  private CleanDecoder decoder;
  private final Map<String, String> kinds = new HashMap<>();
  private Schema clean;
  private Schema anomaly;
  private Schema score;

  @Override
  public void configure(Map<String, ?> configs, boolean isKey) {
    this.isKey = isKey;
    if (isKey) {
      return;
    }
    Object configured = configs.get("pipeline");
    String name = configured == null ? Pipeline.CAR_FLEET : configured.toString();
    Object file = configs.get("schema.file");
    Object bootstrap = configs.get("bootstrap.servers");
    try {
      if (file != null) {
        pipeline = Pipeline.fromFile(name, Path.of(file.toString()));
      } else if (bootstrap != null) {
        Map<String, String> client = new HashMap<>();
        configs.forEach((k, v) -> {
          if (k.startsWith("kafka.")) {
            client.put(k.substring("kafka.".length()), String.valueOf(v));
          }
        });
        Object topic = configs.get("schemas.topic");
        pipeline = SchemaRegistry.read(RegistryFollower.client(bootstrap.toString(), client),
            topic == null ? SchemaRegistry.TOPIC : topic.toString(), Duration.ofSeconds(30))
            .pipeline(name);
      } else {
        throw new DataException("LakelessConverter needs schema.file or bootstrap.servers");
      }
    } catch (IOException e) {
      throw new DataException("cannot read the schema: " + e.getMessage(), e);
    }
    for (String kind : List.of("clean", "anomalies", "scores")) {
      Object renamed = configs.get("topic." + kind);
      kinds.put(renamed == null ? pipeline.topic(kind) : renamed.toString(), kind);
    }
    decoder = new CleanDecoder(pipeline);
    PipelineSchema s = pipeline.current();
    clean = cleanSchema(s);
    anomaly = outputSchema(s, true);
    score = outputSchema(s, false);
  }

  /** The clean record's Struct schema: the pipeline schema's fields in their order. */
  static Schema cleanSchema(PipelineSchema s) {
    SchemaBuilder b = SchemaBuilder.struct().name(s.avro().getFullName());
    for (PipelineSchema.Field f : s.fields()) {
      if (f.name().equals(s.time()) || f.name().equals(s.sequence())) {
        b.field(f.name(), Schema.INT64_SCHEMA);
      } else if (s.featureNames().contains(f.name())) {
        b.field(f.name(), Schema.FLOAT64_SCHEMA);
      } else if (f.name().equals(s.key())) {
        b.field(f.name(), Schema.STRING_SCHEMA);
      } else {
        b.field(f.name(), Schema.OPTIONAL_STRING_SCHEMA);
      }
    }
    return b.build();
  }

  /** The anomaly (or score) Struct schema of docs/data-contract.md section 4. */
  static Schema outputSchema(PipelineSchema s, boolean isAnomaly) {
    SchemaBuilder b = SchemaBuilder.struct()
        .name(s.avro().getFullName() + (isAnomaly ? "Anomaly" : "Score"))
        .field(s.key(), Schema.STRING_SCHEMA)
        .field(s.time(), Schema.INT64_SCHEMA);
    if (s.sequence() != null) {
      b.field(s.sequence(), Schema.INT64_SCHEMA);
    }
    b.field("score", Schema.OPTIONAL_FLOAT64_SCHEMA).field("threshold", Schema.FLOAT64_SCHEMA);
    if (!isAnomaly) {
      b.field("anomaly", Schema.BOOLEAN_SCHEMA);
    }
    b.field("model", Schema.STRING_SCHEMA).field("model_version", Schema.INT32_SCHEMA);
    if (isAnomaly) {
      b.field("top_features", Schema.STRING_SCHEMA);
      if (s.label() != null) {
        b.field(s.label(), Schema.OPTIONAL_STRING_SCHEMA);
      }
      b.field("source", Schema.STRING_SCHEMA);
    }
    return b.build();
  }

  @Override
  public SchemaAndValue toConnectData(String topic, byte[] value) {
    if (value == null) {
      return SchemaAndValue.NULL;
    }
    if (isKey) {
      return new SchemaAndValue(Schema.STRING_SCHEMA, new String(value, StandardCharsets.UTF_8));
    }
    String kind = kinds.get(topic);
    if (kind == null) {
      throw new DataException("topic " + topic + " is none of pipeline " + pipeline.name()
          + "'s topics " + kinds.keySet());
    }
    try {
      return switch (kind) {
        case "clean" -> new SchemaAndValue(clean, cleanStruct(decoder.decode(value)));
        case "anomalies" -> new SchemaAndValue(anomaly, jsonStruct(anomaly, JSON.readTree(value)));
        default -> new SchemaAndValue(score, jsonStruct(score, JSON.readTree(value)));
      };
    } catch (CleanFormatException e) {
      throw new DataException(topic + ": " + e.reason() + ": " + e.getMessage(), e);
    } catch (IOException e) {
      throw new DataException(topic + ": not JSON: " + e.getMessage(), e);
    }
  }

  private Struct cleanStruct(CleanRecord r) {
    PipelineSchema s = decoder.reader();
    Struct struct = new Struct(clean);
    struct.put(s.time(), r.time());
    if (s.sequence() != null) {
      struct.put(s.sequence(), r.sequence());
    }
    List<String> features = s.featureNames();
    for (int i = 0; i < features.size(); i++) {
      struct.put(features.get(i), r.features()[i]);
    }
    List<PipelineSchema.Field> strings = s.strings();
    for (int i = 0; i < strings.size(); i++) {
      struct.put(strings.get(i).name(), r.strings()[i]);
    }
    return struct;
  }

  private static Struct jsonStruct(Schema schema, JsonNode json) {
    Struct struct = new Struct(schema);
    for (org.apache.kafka.connect.data.Field f : schema.fields()) {
      JsonNode v = json.get(f.name());
      if (v == null || v.isNull()) {
        if (!f.schema().isOptional()) {
          throw new DataException("field " + f.name() + " is missing");
        }
        continue;
      }
      struct.put(f, switch (f.schema().type()) {
        case INT64 -> v.asLong();
        case INT32 -> v.asInt();
        case FLOAT64 -> v.asDouble();
        case BOOLEAN -> v.asBoolean();
        default -> v.isTextual() ? v.asText() : v.toString();
      });
    }
    return struct;
  }

  @Override
  public byte[] fromConnectData(String topic, Schema schema, Object value) {
    if (isKey && value != null) {
      return value.toString().getBytes(StandardCharsets.UTF_8);
    }
    throw new DataException("LakelessConverter reads lakeless topics; it does not write them");
  }
}
