package io.lakeless.common;

import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

/**
 * Is a registered model safe to score with (docs/data-contract.md section 5)? Checked in this
 * order: format_version (1 or 2), a finite threshold, the pipeline, the features (each model
 * input one of the pipeline's current features, once, in any order: scorers feed the model's
 * order by name), the normalization's lengths, the bytes (inline or file://), their sha256 and
 * size, the ONNX graph (loads, honours the scoring contract, scores a batch of 2).
 * tests/vectors/registry.json holds the verdicts to reach.
 */
public final class ModelValidator {
  public static final int FORMAT_VERSION = 2;
  public static final java.util.Set<Integer> READABLE_FORMATS = java.util.Set.of(1, 2);

  private ModelValidator() {}

  /**
   * Validate {@code model} for a scorer of {@code pipeline} (null: not checked) that has the
   * columns {@code available} (the pipeline's current features, in order), and load it.
   *
   * @throws ModelRejected with the reason code and a one-line detail
   */
  public static LiveModel load(RegistryEntry.Model model, String pipeline, List<String> available)
      throws ModelRejected {
    if (!READABLE_FORMATS.contains(model.formatVersion())) {
      throw new ModelRejected("format_version", "record format_version " + model.formatVersion()
          + " is unknown (this reader knows " + READABLE_FORMATS + ")");
    }
    if (!Double.isFinite(model.threshold())) {
      throw new ModelRejected("threshold", "threshold is " + model.threshold() + ", not a finite number");
    }
    if (pipeline != null && !pipeline.equals(model.pipeline())) {
      throw new ModelRejected("pipeline", "model was trained on pipeline " + model.pipeline()
          + ", the scorer reads " + pipeline);
    }
    List<String> features = model.features();
    if (features.isEmpty()) {
      throw new ModelRejected("features", "model has no input features");
    }
    if (new java.util.HashSet<>(features).size() != features.size()) {
      throw new ModelRejected("features", "input features repeat: " + features);
    }
    int n = features.size();
    int[] columns = new int[n];
    for (int j = 0; j < n; j++) {
      columns[j] = available.indexOf(features.get(j));
      if (columns[j] < 0) {
        throw new ModelRejected("features", "model input " + features.get(j)
            + " is not a feature of the pipeline's schema " + available);
      }
    }
    if (model.normalization() != null) {
      for (Map.Entry<String, List<Double>> e : model.normalization().entrySet()) {
        if (e.getValue().size() != n) {
          throw new ModelRejected("normalization", "normalization " + e.getKey() + " has "
              + e.getValue().size() + " values for " + n + " features");
        }
      }
    }
    byte[] data = bytes(model);
    String digest = sha256(data);
    if (!digest.equalsIgnoreCase(String.valueOf(model.sha256())) || data.length != model.size()) {
      throw new ModelRejected("checksum", "ONNX bytes have sha256 " + digest.substring(0, 16) + "... ("
          + data.length + " bytes), record says " + model.sha256() + " (" + model.size() + " bytes)");
    }
    OnnxScorer scorer = new OnnxScorer(data, n);
    try {
      scorer.score(new float[2 * n], 2);
    } catch (Exception e) {
      scorer.close();
      throw new ModelRejected("onnx", "model fails on a test batch: " + e.getMessage(), e);
    }
    return new LiveModel(model, scorer, columns);
  }

  /** Only the verdict: null when {@code model} is accepted, else the reason code. */
  public static String verdict(RegistryEntry.Model model, String pipeline, List<String> available) {
    try (LiveModel ignored = load(model, pipeline, available)) {
      return null;
    } catch (ModelRejected e) {
      return e.reason();
    }
  }

  /** The ONNX bytes: inline, or read from the record's file:// uri. */
  static byte[] bytes(RegistryEntry.Model model) throws ModelRejected {
    if (model.onnx() != null) {
      return model.onnx();
    }
    if (model.uri() == null) {
      throw new ModelRejected("missing_bytes", "record has neither ONNX bytes nor a uri");
    }
    URI uri = URI.create(model.uri());
    if (!"file".equals(uri.getScheme())) {
      throw new ModelRejected("missing_bytes", "unsupported model uri " + model.uri() + " (file:// only)");
    }
    try {
      return Files.readAllBytes(Path.of(uri));
    } catch (IOException | RuntimeException e) {
      throw new ModelRejected("missing_bytes", "cannot read " + model.uri() + ": " + e, e);
    }
  }

  static String sha256(byte[] data) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}
