package io.lakeless.streams;

import io.lakeless.common.CleanDecoder;
import io.lakeless.common.CleanFormatException;
import io.lakeless.common.CleanRecord;
import io.lakeless.common.LiveModel;
import io.lakeless.common.ModelSource;
import io.lakeless.common.OnnxScorer;
import io.lakeless.common.OutputJson;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;
import org.apache.kafka.streams.processor.PunctuationType;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.processor.api.RecordMetadata;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Scores NAME.clean records with the registry's live model and forwards anomaly JSON to the
 * child "anomalies" (and score JSON to "scores"). With {@code batchSize == 1} every record is
 * scored as it comes (the talk's per-record way); otherwise records are buffered and scored in
 * one ONNX Runtime call per {@code batchSize} records or every {@code batchMs} (punctuated on
 * wall-clock time). The model is swapped between two batches, never inside one.
 */
public final class ScoreProcessor implements Processor<byte[], byte[], byte[], byte[]> {
  public static final String ANOMALIES = "anomalies";
  public static final String SCORES = "scores";
  private static final Logger LOG = LoggerFactory.getLogger(ScoreProcessor.class);

  private final CleanDecoder decoder;
  private final Supplier<ModelSource> models;
  private final OutputJson output;
  private final int batchSize;
  private final Duration batchMs;
  private final boolean allScores;
  private final AtomicLong processed;
  private final int nFeatures;
  private final List<Record<byte[], byte[]>> batch = new ArrayList<>();
  private final List<CleanRecord> decoded = new ArrayList<>();
  private final List<String> sources = new ArrayList<>();
  private float[] flat;
  private ModelSource source;
  private ProcessorContext<byte[], byte[]> context;

  /**
   * @param models opened once per processor (one per task): its own follower and session
   * @param processed counts scored records (for the bench), may be shared
   */
  public ScoreProcessor(CleanDecoder decoder, Supplier<ModelSource> models, int topK, int batchSize,
      Duration batchMs, boolean allScores, AtomicLong processed) {
    this.decoder = decoder;
    this.models = models;
    this.output = new OutputJson(decoder.reader(), topK);
    this.batchSize = Math.max(1, batchSize);
    this.batchMs = batchMs;
    this.allScores = allScores;
    this.processed = processed;
    this.nFeatures = decoder.reader().features().size();
    this.flat = new float[this.batchSize * nFeatures];
  }

  @Override
  public void init(ProcessorContext<byte[], byte[]> context) {
    this.context = context;
    this.source = models.get();
    if (batchSize > 1) {
      context.schedule(batchMs, PunctuationType.WALL_CLOCK_TIME, now -> flush());
    }
  }

  @Override
  public void process(Record<byte[], byte[]> record) {
    CleanRecord r;
    try {
      r = decoder.decode(record.value());
    } catch (CleanFormatException e) {
      // The contract makes an unknown fingerprint an error that names it; skip and say where.
      LOG.error("skipping {}: {}: {}", where(), e.reason(), e.getMessage());
      return;
    }
    batch.add(record);
    decoded.add(r);
    sources.add(where());
    if (batch.size() >= batchSize) {
      flush();
    }
  }

  private String where() {
    RecordMetadata m = context.recordMetadata().orElse(null);
    return m == null ? "?" : m.topic() + "[" + m.partition() + "]@" + m.offset();
  }

  /** Score what is buffered, in one ONNX Runtime call. */
  void flush() {
    if (batch.isEmpty()) {
      return;
    }
    source.maybePoll();
    LiveModel model = source.current();
    if (model == null) {
      throw new IllegalStateException("no live model to score with: promote one on lakeless.models");
    }
    int n = batch.size();
    for (int i = 0; i < n; i++) {
      model.fill(flat, i, decoded.get(i).features());
    }
    OnnxScorer.Result result;
    try {
      result = model.scorer().score(flat, n);
    } catch (Exception e) {
      throw new IllegalStateException("scoring with " + model.record().ref() + " failed", e);
    }
    long now = System.currentTimeMillis();
    for (int i = 0; i < n; i++) {
      CleanRecord r = decoded.get(i);
      double score = result.scores()[i];
      Record<byte[], byte[]> in = batch.get(i);
      if (model.isAnomaly(score)) {
        byte[] json = output.anomaly(r, score, model, result.errors(), i, sources.get(i));
        context.forward(new Record<>(in.key(), json, now), ANOMALIES);
      }
      if (allScores) {
        context.forward(new Record<>(in.key(), output.score(r, score, model), now), SCORES);
      }
    }
    processed.addAndGet(n);
    batch.clear();
    decoded.clear();
    sources.clear();
  }

  @Override
  public void close() {
    if (source != null) {
      source.close();
    }
  }
}
