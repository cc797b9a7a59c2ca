package io.lakeless.flink;

import io.lakeless.common.CleanDecoder;
import io.lakeless.common.CleanFormatException;
import io.lakeless.common.CleanRecord;
import io.lakeless.common.Pipeline;
import io.lakeless.common.PipelineSchema;
import java.io.IOException;
import java.io.Serializable;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.serialization.DeserializationSchema;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.TimestampData;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.LogicalTypeRoot;
import org.apache.flink.table.types.logical.RowType;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Decodes NAME.clean values into rows of the table's columns (see {@link CleanFormatFactory}). */
public final class CleanDeserializer implements DeserializationSchema<RowData> {
  private static final long serialVersionUID = 1L;
  private static final Logger LOG = LoggerFactory.getLogger(CleanDeserializer.class);

  /** Where the pipeline's schema comes from. */
  record Source(String pipeline, String schemaFile, String bootstrap, String schemasTopic,
      Map<String, String> client) implements Serializable {
    Pipeline load() {
      return CleanFormatFactory.load(this);
    }
  }

  private enum Kind { KEY, TIME, TIME_LTZ, SEQUENCE, FEATURE, STRING }

  private final Source source;
  private final Map<Integer, String> versions;
  private final List<String> columns;
  private final List<LogicalTypeRoot> roots;
  private final TypeInformation<RowData> type;
  private final boolean ignoreErrors;
  private transient CleanDecoder decoder;
  private transient Kind[] kinds;
  private transient int[] index;
  private transient long lastReload;

  CleanDeserializer(Source source, Map<Integer, String> versions, RowType row,
      TypeInformation<RowData> type, boolean ignoreErrors) {
    this.source = source;
    this.versions = Map.copyOf(versions);
    this.columns = row.getFieldNames();
    this.roots = row.getChildren().stream().map(LogicalType::getTypeRoot).toList();
    this.type = type;
    this.ignoreErrors = ignoreErrors;
  }

  /** Every column must be a field of the schema, with a type that holds it. */
  static void check(PipelineSchema schema, RowType row) {
    List<String> fields = CleanFormatFactory.names(schema);
    for (RowType.RowField f : row.getFields()) {
      if (!fields.contains(f.getName())) {
        throw new ValidationException("column " + f.getName() + " is not a field of pipeline schema "
            + schema.avro().getFullName() + " " + fields);
      }
      LogicalTypeRoot root = f.getType().getTypeRoot();
      String name = f.getName();
      boolean ok;
      if (name.equals(schema.time())) {
        ok = root == LogicalTypeRoot.BIGINT || root == LogicalTypeRoot.TIMESTAMP_WITH_LOCAL_TIME_ZONE;
      } else if (name.equals(schema.sequence())) {
        ok = root == LogicalTypeRoot.BIGINT;
      } else if (schema.featureNames().contains(name)) {
        ok = root == LogicalTypeRoot.DOUBLE;
      } else {
        ok = root == LogicalTypeRoot.VARCHAR || root == LogicalTypeRoot.CHAR;
      }
      if (!ok) {
        throw new ValidationException("column " + name + " has type " + f.getType()
            + "; lakeless-clean gives the time as BIGINT or TIMESTAMP_LTZ(3), the sequence as "
            + "BIGINT, features as DOUBLE and strings as STRING");
      }
    }
  }

  @Override
  public void open(InitializationContext context) {
    Pipeline pipeline = new Pipeline(source.pipeline(), Pipeline.defaultTopics(source.pipeline()),
        Pipeline.defaultModel(source.pipeline()));
    versions.entrySet().stream().sorted(Map.Entry.comparingByKey()).forEach(e -> pipeline.versions()
        .put(e.getKey(), PipelineSchema.parse(e.getValue())));
    setUp(pipeline, versions.keySet().stream().max(Integer::compare).orElseThrow());
  }

  private void setUp(Pipeline pipeline, int current) {
    decoder = new CleanDecoder(pipeline, current);
    PipelineSchema schema = decoder.reader();
    List<String> features = schema.featureNames();
    List<String> strings = schema.strings().stream().map(PipelineSchema.Field::name).toList();
    kinds = new Kind[columns.size()];
    index = new int[columns.size()];
    for (int i = 0; i < kinds.length; i++) {
      String c = columns.get(i);
      if (c.equals(schema.time())) {
        kinds[i] = roots.get(i) == LogicalTypeRoot.BIGINT ? Kind.TIME : Kind.TIME_LTZ;
      } else if (c.equals(schema.sequence())) {
        kinds[i] = Kind.SEQUENCE;
      } else if (features.contains(c)) {
        kinds[i] = Kind.FEATURE;
        index[i] = features.indexOf(c);
      } else {
        kinds[i] = c.equals(schema.key()) ? Kind.KEY : Kind.STRING;
        index[i] = strings.indexOf(c);
      }
    }
  }

  @Override
  public RowData deserialize(byte[] message) throws IOException {
    CleanRecord r;
    try {
      r = decoder.decode(message);
    } catch (CleanFormatException e) {
      long now = System.currentTimeMillis();
      if ("fingerprint".equals(e.reason()) && source.bootstrap() != null && now - lastReload > 10_000) {
        // Maybe a version registered after the job started: read the registry again (at most
        // every 10 s, so a stream of foreign records does not hammer it).
        lastReload = now;
        Pipeline fresh = source.load();
        setUp(fresh, fresh.currentVersion());
        try {
          r = decoder.decode(message);
        } catch (CleanFormatException again) {
          return fail(again);
        }
      } else {
        return fail(e);
      }
    }
    GenericRowData row = new GenericRowData(kinds.length);
    for (int i = 0; i < kinds.length; i++) {
      row.setField(i, switch (kinds[i]) {
        case KEY, STRING -> {
          String s = index[i] < 0 ? null : r.strings()[index[i]];
          yield s == null ? null : StringData.fromString(s);
        }
        case TIME -> r.time();
        case TIME_LTZ -> TimestampData.fromEpochMillis(r.time());
        case SEQUENCE -> r.sequence();
        case FEATURE -> r.features()[index[i]];
      });
    }
    return row;
  }

  private RowData fail(CleanFormatException e) throws IOException {
    if (ignoreErrors) {
      LOG.warn("skipping a clean record: {}: {}", e.reason(), e.getMessage());
      return null;
    }
    throw new IOException("lakeless-clean: " + e.reason() + ": " + e.getMessage(), e);
  }

  @Override
  public boolean isEndOfStream(RowData next) {
    return false;
  }

  @Override
  public TypeInformation<RowData> getProducedType() {
    return type;
  }
}
