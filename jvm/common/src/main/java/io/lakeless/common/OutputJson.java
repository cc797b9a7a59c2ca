package io.lakeless.common;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.List;

/**
 * The output records of docs/data-contract.md section 4: anomaly JSON (NAME.anomalies) and score
 * JSON (NAME.scores), with the field names of the pipeline's schema.
 */
public final class OutputJson {
  private static final JsonFactory FACTORY = new JsonFactory();

  private final PipelineSchema schema;
  private final int topK;

  public OutputJson(PipelineSchema schema, int topK) {
    this.schema = schema;
    this.topK = topK;
  }

  /**
   * An anomaly: the event's key, time, sequence, score, threshold, model, the topK model inputs
   * with the largest errors (largest first), the label, and {@code source} =
   * topic[partition]@offset.
   *
   * @param errors per-input errors of all rows of a batch, row-major
   * @param row the row of this record in {@code errors}
   */
  public byte[] anomaly(CleanRecord r, double score, LiveModel model, float[] errors, int row,
      String source) {
    ByteArrayOutputStream out = new ByteArrayOutputStream(256);
    try (JsonGenerator g = FACTORY.createGenerator(out)) {
      g.writeStartObject();
      head(g, r, score, model);
      g.writeArrayFieldStart("top_features");
      List<String> inputs = model.record().features();
      int n = inputs.size();
      boolean[] used = new boolean[n];
      for (int k = 0; k < Math.min(topK, n); k++) {
        int best = -1;
        for (int j = 0; j < n; j++) {
          if (!used[j] && (best < 0 || errors[row * n + j] > errors[row * n + best])) {
            best = j;
          }
        }
        used[best] = true;
        g.writeStartObject();
        g.writeStringField("name", inputs.get(best));
        g.writeNumberField("value", r.features()[model.columns()[best]]);
        g.writeNumberField("error", (double) errors[row * n + best]);
        g.writeEndObject();
      }
      g.writeEndArray();
      if (schema.label() != null) {
        g.writeStringField(schema.label(), r.strings()[r.strings().length - 1]);
      }
      g.writeStringField("source", source);
      g.writeEndObject();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return out.toByteArray();
  }

  /** A score record of NAME.scores. */
  public byte[] score(CleanRecord r, double score, LiveModel model) {
    ByteArrayOutputStream out = new ByteArrayOutputStream(160);
    try (JsonGenerator g = FACTORY.createGenerator(out)) {
      g.writeStartObject();
      g.writeStringField(schema.key(), r.key());
      g.writeNumberField(schema.time(), r.time());
      if (schema.sequence() != null) {
        g.writeNumberField(schema.sequence(), r.sequence());
      }
      number(g, "score", score);
      g.writeNumberField("threshold", model.threshold());
      g.writeBooleanField("anomaly", model.isAnomaly(score));
      g.writeStringField("model", model.name());
      g.writeNumberField("model_version", model.version());
      g.writeEndObject();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return out.toByteArray();
  }

  private void head(JsonGenerator g, CleanRecord r, double score, LiveModel model) throws IOException {
    g.writeStringField(schema.key(), r.key());
    g.writeNumberField(schema.time(), r.time());
    if (schema.sequence() != null) {
      g.writeNumberField(schema.sequence(), r.sequence());
    }
    number(g, "score", score);
    g.writeNumberField("threshold", model.threshold());
    g.writeStringField("model", model.name());
    g.writeNumberField("model_version", model.version());
  }

  /** JSON has no NaN or infinity: a non-finite score is written as null (it is an anomaly). */
  private static void number(JsonGenerator g, String name, double value) throws IOException {
    if (Double.isFinite(value)) {
      g.writeNumberField(name, value);
    } else {
      g.writeNullField(name);
    }
  }
}
