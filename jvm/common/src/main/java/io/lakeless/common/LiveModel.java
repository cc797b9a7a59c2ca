package io.lakeless.common;

/**
 * A validated model, its ONNX Runtime session, and where its inputs are among the scorer's
 * columns: input j of the model is column {@code columns[j]} of the pipeline's features.
 */
public record LiveModel(RegistryEntry.Model record, OnnxScorer scorer, int[] columns)
    implements AutoCloseable {
  /** Row {@code i} of a batch: the model's inputs taken from {@code values} (pipeline order). */
  public void fill(float[] batch, int i, double[] values) {
    int n = columns.length;
    for (int j = 0; j < n; j++) {
      batch[i * n + j] = (float) values[columns[j]];
    }
  }

  public String name() {
    return record.name();
  }

  public int version() {
    return record.version();
  }

  public double threshold() {
    return record.threshold();
  }

  /** Contract: a non-finite score is always an anomaly. */
  public boolean isAnomaly(double score) {
    return !Double.isFinite(score) || score > record.threshold();
  }

  @Override
  public void close() {
    scorer.close();
  }
}
