package io.lakeless.common;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Decodes clean layout version 2 (docs/data-contract.md section 3) into the terms of one reader
 * version of a pipeline: records of an older registered version decode with that version's
 * layout, and a field the reader added since takes its default.
 */
public final class CleanDecoder {
  public static final byte LAYOUT_VERSION = 2;
  private static final int NULL_LENGTH = 0xFFFF;

  private final Pipeline pipeline;
  private final PipelineSchema reader;
  private final Map<Long, Plan> plans = new HashMap<>();

  /** How a writer version's values land in the reader's order. */
  private record Plan(
      int version, PipelineSchema writer, int[] featureFrom, double[] featureDefault,
      int[] stringFrom, String[] stringDefault) {}

  public CleanDecoder(Pipeline pipeline) {
    this(pipeline, pipeline.currentVersion());
  }

  public CleanDecoder(Pipeline pipeline, int readerVersion) {
    this.pipeline = pipeline;
    this.reader = pipeline.versions().get(readerVersion);
    if (reader == null) {
      throw new IllegalArgumentException("pipeline " + pipeline.name() + " has no version " + readerVersion);
    }
  }

  public PipelineSchema reader() {
    return reader;
  }

  public Pipeline pipeline() {
    return pipeline;
  }

  /** Decode one record value. */
  public CleanRecord decode(byte[] value) {
    if (value == null || value.length < 9) {
      throw new CleanFormatException("truncated", "clean record of " + (value == null ? 0 : value.length)
          + " bytes, shorter than its header");
    }
    if (value[0] != LAYOUT_VERSION) {
      throw new CleanFormatException("layout_version", "clean layout version " + value[0]
          + ", this reader knows version " + LAYOUT_VERSION);
    }
    ByteBuffer buf = ByteBuffer.wrap(value).order(ByteOrder.LITTLE_ENDIAN);
    long fingerprint = buf.getLong(1);
    Plan plan = plans.computeIfAbsent(fingerprint, this::plan);
    PipelineSchema writer = plan.writer();
    int numeric = writer.numericSize();
    if (value.length < numeric) {
      throw new CleanFormatException("truncated", "clean record of " + value.length
          + " bytes, its schema version has " + numeric + " numeric bytes");
    }
    long time = buf.getLong(9);
    int at = 17;
    Long sequence = null;
    if (writer.sequence() != null) {
      sequence = buf.getLong(at);
      at += 8;
    }
    double[] features = new double[plan.featureFrom().length];
    for (int i = 0; i < features.length; i++) {
      int from = plan.featureFrom()[i];
      features[i] = from < 0 ? plan.featureDefault()[i] : buf.getDouble(at + 8 * from);
    }
    at = numeric;
    int nStrings = writer.strings().size();
    String[] written = new String[nStrings];
    for (int i = 0; i < nStrings; i++) {
      if (at + 2 > value.length) {
        throw new CleanFormatException("truncated", "clean record ends inside string " + i);
      }
      int length = Short.toUnsignedInt(buf.getShort(at));
      at += 2;
      if (length == NULL_LENGTH) {
        continue;
      }
      if (at + length > value.length) {
        throw new CleanFormatException("truncated", "string " + writer.strings().get(i).name()
            + " of " + length + " bytes goes past the record's end");
      }
      written[i] = new String(value, at, length, StandardCharsets.UTF_8);
      at += length;
    }
    if (at != value.length) {
      throw new CleanFormatException("trailing", (value.length - at) + " bytes after the last string");
    }
    String[] strings = new String[plan.stringFrom().length];
    for (int i = 0; i < strings.length; i++) {
      int from = plan.stringFrom()[i];
      strings[i] = from < 0 ? plan.stringDefault()[i] : written[from];
    }
    return new CleanRecord(plan.version(), time, sequence, features, strings);
  }

  /** The schema version a value was written with (its fingerprint resolved), without decoding. */
  public int writerVersion(byte[] value) {
    long fingerprint = ByteBuffer.wrap(value).order(ByteOrder.LITTLE_ENDIAN).getLong(1);
    return plans.computeIfAbsent(fingerprint, this::plan).version();
  }

  private Plan plan(long fingerprint) {
    Integer version = pipeline.versionOf(fingerprint);
    if (version == null) {
      throw new CleanFormatException("fingerprint", "schema fingerprint "
          + PipelineSchema.hex(fingerprint) + " is not a registered version of pipeline "
          + pipeline.name() + " (" + pipeline.describeVersions() + ")");
    }
    PipelineSchema writer = pipeline.versions().get(version);
    List<String> writerFeatures = writer.featureNames();
    List<PipelineSchema.Field> readerFeatures = reader.features();
    int[] featureFrom = new int[readerFeatures.size()];
    double[] featureDefault = new double[readerFeatures.size()];
    for (int i = 0; i < featureFrom.length; i++) {
      PipelineSchema.Field f = readerFeatures.get(i);
      featureFrom[i] = writerFeatures.indexOf(f.name());
      if (featureFrom[i] < 0) {
        featureDefault[i] = numericDefault(f);
      }
    }
    List<String> writerStrings = writer.strings().stream().map(PipelineSchema.Field::name).toList();
    List<PipelineSchema.Field> readerStrings = reader.strings();
    int[] stringFrom = new int[readerStrings.size()];
    String[] stringDefault = new String[readerStrings.size()];
    for (int i = 0; i < stringFrom.length; i++) {
      PipelineSchema.Field f = readerStrings.get(i);
      stringFrom[i] = writerStrings.indexOf(f.name());
      JsonNode d = f.defaultValue();
      stringDefault[i] = d == null || d.isNull() ? null : d.asText();
    }
    return new Plan(version, writer, featureFrom, featureDefault, stringFrom, stringDefault);
  }

  private double numericDefault(PipelineSchema.Field f) {
    JsonNode d = f.defaultValue();
    if (d == null || d.isNull()) {
      throw new CleanFormatException("fingerprint", "field " + f.name() + " of pipeline "
          + pipeline.name() + " has no default for records of older versions");
    }
    return d.isBoolean() ? (d.asBoolean() ? 1.0 : 0.0) : d.asDouble();
  }
}
