package io.lakeless.flink;

import io.lakeless.common.LiveModel;
import io.lakeless.common.OnnxScorer;
import io.lakeless.common.RegistryFollower;
import java.io.Serializable;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.PredictFunction;
import org.apache.flink.table.types.logical.LogicalTypeRoot;

/**
 * Scores one row with the registry's live model; between two rows (at most every
 * registry.poll.ms) it takes in registry changes and swaps to a newly promoted valid version.
 * Public: Flink's generated code calls it.
 */
public final class PredictUdf extends PredictFunction {
  private static final long serialVersionUID = 1L;
  static final Set<LogicalTypeRoot> NUMERIC = Set.of(LogicalTypeRoot.DOUBLE, LogicalTypeRoot.FLOAT,
      LogicalTypeRoot.INTEGER, LogicalTypeRoot.BIGINT, LogicalTypeRoot.SMALLINT,
      LogicalTypeRoot.TINYINT, LogicalTypeRoot.BOOLEAN);

  /** Everything the function needs, serializable. */
  record Config(String bootstrap, Map<String, String> client, String modelsTopic, String model,
      String pipeline, List<String> features, List<LogicalTypeRoot> inputTypes, List<String> outputs,
      List<LogicalTypeRoot> outputTypes, long pollMs) implements Serializable {}

  private final Config config;
  private transient RegistryFollower follower;
  private transient float[] row;
  private transient double[] values;

  PredictUdf(Config config) {
    this.config = config;
  }

  @Override
  public void open(FunctionContext context) {
    follower = new RegistryFollower(RegistryFollower.client(config.bootstrap(), config.client()),
        config.modelsTopic(), config.model(), config.pipeline(), config.features(),
        Duration.ofSeconds(60),
        Duration.ofMillis(config.pollMs()));
    row = new float[config.features().size()];
    values = new double[config.features().size()];
  }

  @Override
  public Collection<RowData> predict(RowData input) {
    follower.maybePoll();
    LiveModel model = follower.current();
    if (model == null) {
      throw new IllegalStateException("no live version of model " + config.model() + " on "
          + config.modelsTopic() + ": promote one");
    }
    for (int i = 0; i < values.length; i++) {
      values[i] = value(input, i, config.inputTypes().get(i));
    }
    model.fill(row, 0, values);
    OnnxScorer.Result result;
    try {
      result = model.scorer().score(row, 1);
    } catch (Exception e) {
      throw new IllegalStateException("scoring with " + model.record().ref() + " failed", e);
    }
    double score = result.scores()[0];
    GenericRowData out = new GenericRowData(config.outputs().size());
    for (int i = 0; i < config.outputs().size(); i++) {
      out.setField(i, switch (config.outputs().get(i)) {
        case "score" -> config.outputTypes().get(i) == LogicalTypeRoot.FLOAT ? (Object) (float) score : score;
        case "anomaly" -> model.isAnomaly(score);
        case "model_version" -> model.version();
        case "model" -> StringData.fromString(model.name());
        case "threshold" -> model.threshold();
        default -> null;
      });
    }
    List<RowData> rows = new ArrayList<>(1);
    rows.add(out);
    return rows;
  }

  private static double value(RowData row, int i, LogicalTypeRoot type) {
    if (row.isNullAt(i)) {
      return Double.NaN;
    }
    return switch (type) {
      case DOUBLE -> row.getDouble(i);
      case FLOAT -> row.getFloat(i);
      case INTEGER -> row.getInt(i);
      case BIGINT -> row.getLong(i);
      case SMALLINT -> row.getShort(i);
      case TINYINT -> row.getByte(i);
      case BOOLEAN -> row.getBoolean(i) ? 1.0 : 0.0;
      default -> throw new IllegalArgumentException("unsupported input type " + type);
    };
  }

  @Override
  public void close() {
    if (follower != null) {
      follower.close();
    }
  }
}
