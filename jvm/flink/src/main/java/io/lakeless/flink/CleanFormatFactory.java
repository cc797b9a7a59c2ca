package io.lakeless.flink;

import io.lakeless.common.Pipeline;
import io.lakeless.common.PipelineSchema;
import io.lakeless.common.RegistryFollower;
import io.lakeless.common.SchemaRegistry;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.flink.api.common.serialization.DeserializationSchema;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.connector.ChangelogMode;
import org.apache.flink.table.connector.format.DecodingFormat;
import org.apache.flink.table.connector.source.DynamicTableSource;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.factories.DeserializationFormatFactory;
import org.apache.flink.table.factories.DynamicTableFactory;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.logical.RowType;

/**
 * {@code 'format' = 'lakeless-clean'}: a NAME.clean topic as a table whose columns are the
 * pipeline schema's fields, by name (any subset, in any order): the key, time (BIGINT or
 * TIMESTAMP_LTZ(3)), sequence (BIGINT), features (DOUBLE), context and label (STRING).
 * Options: lakeless-clean.pipeline (default car-fleet) and either
 * lakeless-clean.schema-file (an .avsc) or lakeless-clean.bootstrap.servers (read
 * lakeless.schemas; a record of a version registered after the job started makes it read the
 * registry again), lakeless-clean.schemas.topic, lakeless-clean.ignore-parse-errors,
 * lakeless-clean.properties.* (client settings).
 */
public final class CleanFormatFactory implements DeserializationFormatFactory {
  public static final String IDENTIFIER = "lakeless-clean";
  static final ConfigOption<String> PIPELINE =
      ConfigOptions.key("pipeline").stringType().defaultValue(Pipeline.CAR_FLEET);
  static final ConfigOption<String> SCHEMA_FILE = ConfigOptions.key("schema-file").stringType().noDefaultValue();
  static final ConfigOption<String> BOOTSTRAP =
      ConfigOptions.key("bootstrap.servers").stringType().noDefaultValue();
  static final ConfigOption<String> SCHEMAS_TOPIC =
      ConfigOptions.key("schemas.topic").stringType().defaultValue(SchemaRegistry.TOPIC);
  static final ConfigOption<Boolean> IGNORE_ERRORS =
      ConfigOptions.key("ignore-parse-errors").booleanType().defaultValue(false);

  @Override
  public String factoryIdentifier() {
    return IDENTIFIER;
  }

  @Override
  public Set<ConfigOption<?>> requiredOptions() {
    return Set.of();
  }

  @Override
  public Set<ConfigOption<?>> optionalOptions() {
    return Set.of(PIPELINE, SCHEMA_FILE, BOOTSTRAP, SCHEMAS_TOPIC, IGNORE_ERRORS);
  }

  @Override
  public DecodingFormat<DeserializationSchema<RowData>> createDecodingFormat(
      DynamicTableFactory.Context context, ReadableConfig options) {
    Map<String, String> client = new HashMap<>();
    String prefix = IDENTIFIER + ".properties.";
    context.getCatalogTable().getOptions().forEach((k, v) -> {
      if (k.startsWith(prefix)) {
        client.put(k.substring(prefix.length()), v);
      }
    });
    CleanDeserializer.Source source = new CleanDeserializer.Source(options.get(PIPELINE),
        options.getOptional(SCHEMA_FILE).orElse(null), options.getOptional(BOOTSTRAP).orElse(null),
        options.get(SCHEMAS_TOPIC), client);
    if (source.schemaFile() == null && source.bootstrap() == null) {
      throw new ValidationException("format lakeless-clean needs 'lakeless-clean.schema-file' or "
          + "'lakeless-clean.bootstrap.servers'");
    }
    boolean ignoreErrors = options.get(IGNORE_ERRORS);
    Pipeline pipeline = source.load();
    return new DecodingFormat<>() {
      @Override
      public DeserializationSchema<RowData> createRuntimeDecoder(
          DynamicTableSource.Context ctx, DataType physical) {
        RowType row = (RowType) physical.getLogicalType();
        CleanDeserializer.check(pipeline.current(), row);
        return new CleanDeserializer(source, versions(pipeline), row,
            ctx.createTypeInformation(physical), ignoreErrors);
      }

      @Override
      public ChangelogMode getChangelogMode() {
        return ChangelogMode.insertOnly();
      }
    };
  }

  /** The pipeline's versions as .avsc text, to ship with the job. */
  static Map<Integer, String> versions(Pipeline pipeline) {
    Map<Integer, String> out = new LinkedHashMap<>();
    pipeline.versions().forEach((v, s) -> out.put(v, s.json().toString()));
    return out;
  }

  static Pipeline load(CleanDeserializer.Source s) {
    if (s.schemaFile() != null) {
      try {
        return Pipeline.fromFile(s.pipeline(), Path.of(s.schemaFile()));
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return SchemaRegistry.read(RegistryFollower.client(s.bootstrap(), s.client()), s.schemasTopic(),
        Duration.ofSeconds(30)).pipeline(s.pipeline());
  }

  static List<String> names(PipelineSchema schema) {
    return schema.fields().stream().map(PipelineSchema.Field::name).toList();
  }
}
