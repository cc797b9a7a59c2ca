package io.lakeless.common;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import java.nio.FloatBuffer;
import java.util.Map;
import java.util.Set;

/**
 * One ONNX Runtime session (one intra-op thread) of a model that honours the scoring contract:
 * input {@code features} float32 [batch, n], outputs {@code score} float32 [batch] and
 * {@code feature_errors} float32 [batch, n]. Not thread-safe: one per scoring thread.
 */
public final class OnnxScorer implements AutoCloseable {
  public static final String INPUT = "features";
  public static final String SCORE = "score";
  public static final String ERRORS = "feature_errors";

  /** Scores of a batch of {@code rows}, and the per-feature errors row by row. */
  public record Result(float[] scores, float[] errors, int features) {}

  private final OrtEnvironment env = OrtEnvironment.getEnvironment();
  private final OrtSession session;
  private final int nFeatures;

  /**
   * Load {@code onnx} and check its inputs and outputs against the contract.
   *
   * @throws ModelRejected (onnx) it does not load or breaks the contract
   */
  public OnnxScorer(byte[] onnx, int nFeatures) throws ModelRejected {
    this.nFeatures = nFeatures;
    try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
      options.setIntraOpNumThreads(1);
      options.setInterOpNumThreads(1);
      session = env.createSession(onnx, options);
    } catch (OrtException e) {
      throw new ModelRejected("onnx", "ONNX Runtime cannot load the model: " + e.getMessage(), e);
    }
    try {
      Map<String, NodeInfo> inputs = session.getInputInfo();
      Set<String> outputs = session.getOutputNames();
      if (!inputs.keySet().equals(Set.of(INPUT)) || !outputs.containsAll(Set.of(SCORE, ERRORS))) {
        throw new ModelRejected("onnx", "model has inputs " + inputs.keySet() + " and outputs "
            + outputs + "; expected input features and outputs score, feature_errors");
      }
      long[] shape = ((TensorInfo) inputs.get(INPUT).getInfo()).getShape();
      if (shape.length != 2 || (shape[1] >= 0 && shape[1] != nFeatures)) {
        throw new ModelRejected("onnx", "model input shape " + java.util.Arrays.toString(shape)
            + " does not take " + nFeatures + " features");
      }
    } catch (OrtException | ClassCastException e) {
      close();
      throw new ModelRejected("onnx", "cannot read the model's inputs: " + e.getMessage(), e);
    } catch (ModelRejected e) {
      close();
      throw e;
    }
  }

  public int features() {
    return nFeatures;
  }

  /** Score {@code rows} rows of {@code flat} (row-major, {@code rows * features()} values). */
  public Result score(float[] flat, int rows) throws OrtException {
    long[] shape = {rows, nFeatures};
    try (OnnxTensor input = OnnxTensor.createTensor(env, FloatBuffer.wrap(flat, 0, rows * nFeatures), shape);
        OrtSession.Result out = session.run(Map.of(INPUT, input), Set.of(SCORE, ERRORS))) {
      OnnxTensor score = (OnnxTensor) out.get(SCORE).orElseThrow();
      OnnxTensor errors = (OnnxTensor) out.get(ERRORS).orElseThrow();
      long[] scoreShape = score.getInfo().getShape();
      long[] errorShape = errors.getInfo().getShape();
      if (scoreShape.length != 1 || scoreShape[0] != rows || errorShape.length != 2
          || errorShape[0] != rows || errorShape[1] != nFeatures) {
        throw new IllegalStateException("a batch of " + rows + " gives score shape "
            + java.util.Arrays.toString(scoreShape) + " and feature_errors shape "
            + java.util.Arrays.toString(errorShape));
      }
      FloatBuffer s = score.getFloatBuffer();
      FloatBuffer e = errors.getFloatBuffer();
      float[] scores = new float[rows];
      float[] errs = new float[rows * nFeatures];
      s.get(scores);
      e.get(errs);
      return new Result(scores, errs, nFeatures);
    }
  }

  @Override
  public void close() {
    try {
      session.close();
    } catch (OrtException e) {
      // closing a session that failed its checks: nothing left to release
    }
  }
}
