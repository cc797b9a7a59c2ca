package io.lakeless.flink;

import io.lakeless.common.Pipeline;
import io.lakeless.common.RegistryFollower;
import io.lakeless.common.SchemaRegistry;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.catalog.Column;
import org.apache.flink.table.catalog.ResolvedSchema;
import org.apache.flink.table.factories.FactoryUtil;
import org.apache.flink.table.factories.ModelProviderFactory;
import org.apache.flink.table.functions.PredictFunction;
import org.apache.flink.table.ml.ModelProvider;
import org.apache.flink.table.ml.PredictRuntimeProvider;
import org.apache.flink.table.types.logical.LogicalTypeRoot;

/**
 * {@code 'provider' = 'lakeless'}: ML_PREDICT with the live model of the lakeless registry.
 *
 * <pre>
 * CREATE MODEL car_ae INPUT (coolant_temp DOUBLE, ...) OUTPUT (score DOUBLE, anomaly BOOLEAN,
 *   model_version INT) WITH ('provider' = 'lakeless', 'bootstrap.servers' = 'host:9092',
 *   'model' = 'car-autoencoder')
 * </pre>
 *
 * The INPUT columns are what the model may draw on: each input of the registry's model must be
 * one of them (by name, fed in the model's own order), else the model is refused. OUTPUT columns may be any of score DOUBLE/FLOAT, anomaly BOOLEAN, model_version
 * INT, model STRING, threshold DOUBLE. Options: bootstrap.servers, model, models.topic,
 * pipeline (check INPUT against the pipeline's features), registry.poll.ms, properties.* (Kafka
 * client settings such as security.protocol, passed through).
 */
public final class LakelessModelFactory implements ModelProviderFactory {
  public static final ConfigOption<String> BOOTSTRAP =
      ConfigOptions.key("bootstrap.servers").stringType().noDefaultValue();
  public static final ConfigOption<String> MODEL = ConfigOptions.key("model").stringType().noDefaultValue();
  public static final ConfigOption<String> MODELS_TOPIC =
      ConfigOptions.key("models.topic").stringType().defaultValue(RegistryFollower.TOPIC);
  public static final ConfigOption<String> PIPELINE =
      ConfigOptions.key("pipeline").stringType().noDefaultValue();
  public static final ConfigOption<String> SCHEMAS_TOPIC =
      ConfigOptions.key("schemas.topic").stringType().defaultValue(SchemaRegistry.TOPIC);
  public static final ConfigOption<Long> POLL_MS =
      ConfigOptions.key("registry.poll.ms").longType().defaultValue(500L);
  static final Set<String> OUTPUTS = Set.of("score", "anomaly", "model_version", "model", "threshold");

  @Override
  public String factoryIdentifier() {
    return "lakeless";
  }

  @Override
  public Set<ConfigOption<?>> requiredOptions() {
    return Set.of(BOOTSTRAP, MODEL);
  }

  @Override
  public Set<ConfigOption<?>> optionalOptions() {
    return Set.of(MODELS_TOPIC, PIPELINE, SCHEMAS_TOPIC, POLL_MS);
  }

  @Override
  public ModelProvider createModelProvider(Context context) {
    FactoryUtil.ModelProviderFactoryHelper helper =
        FactoryUtil.createModelProviderFactoryHelper(this, context);
    helper.validateExcept("properties.");
    ReadableConfig options = helper.getOptions();
    Map<String, String> client = new HashMap<>();
    context.getCatalogModel().getOptions().forEach((k, v) -> {
      if (k.startsWith("properties.")) {
        client.put(k.substring("properties.".length()), v);
      }
    });
    ResolvedSchema input = context.getCatalogModel().getResolvedInputSchema();
    ResolvedSchema output = context.getCatalogModel().getResolvedOutputSchema();
    List<String> features = input.getColumnNames();
    for (Column c : input.getColumns()) {
      LogicalTypeRoot root = c.getDataType().getLogicalType().getTypeRoot();
      if (!PredictUdf.NUMERIC.contains(root)) {
        throw new ValidationException("model input " + c.getName() + " is " + c.getDataType()
            + ": lakeless models take numeric features");
      }
    }
    for (String name : output.getColumnNames()) {
      if (!OUTPUTS.contains(name)) {
        throw new ValidationException("model output " + name + " is unknown; use " + OUTPUTS);
      }
    }
    String bootstrap = options.get(BOOTSTRAP);
    if (options.getOptional(PIPELINE).isPresent()) {
      Pipeline pipeline = SchemaRegistry.read(
          RegistryFollower.client(bootstrap, client), options.get(SCHEMAS_TOPIC),
          java.time.Duration.ofSeconds(30)).pipeline(options.get(PIPELINE));
      if (!pipeline.current().featureNames().containsAll(features)) {
        throw new ValidationException("model INPUT " + features + " is not among pipeline "
            + pipeline.name() + "'s features " + pipeline.current().featureNames());
      }
    }
    PredictUdf.Config config = new PredictUdf.Config(bootstrap, client, options.get(MODELS_TOPIC),
        options.get(MODEL), options.getOptional(PIPELINE).orElse(null), features,
        input.getColumnDataTypes().stream()
            .map(t -> t.getLogicalType().getTypeRoot()).toList(),
        output.getColumnNames(), output.getColumnDataTypes().stream()
            .map(t -> t.getLogicalType().getTypeRoot()).toList(), options.get(POLL_MS));
    return new Provider(config);
  }

  /** Creates one {@link PredictUdf} per parallel instance. */
  static final class Provider implements PredictRuntimeProvider {
    private final PredictUdf.Config config;

    Provider(PredictUdf.Config config) {
      this.config = config;
    }

    @Override
    public PredictFunction createPredictFunction(Context context) {
      return new PredictUdf(config);
    }

    @Override
    public ModelProvider copy() {
      return new Provider(config);
    }
  }
}
