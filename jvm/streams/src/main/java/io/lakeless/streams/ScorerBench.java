package io.lakeless.streams;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.streams.KafkaStreams;

/**
 * Bench entry point: runs {@link ScorerApp} (settings file as for the app; a fresh
 * application.id reading from the earliest offset) on a pre-filled NAME.clean topic until it has
 * scored {@code records} records, then prints one JSON line {records, seconds, rate, ...}.
 * seconds run from the first scored batch to the last (start-up, model load and group join are
 * in startup_seconds).
 */
public final class ScorerBench {
  private ScorerBench() {}

  public static void main(String[] args) throws Exception {
    if (args.length != 2) {
      System.err.println("usage: ScorerBench app.properties RECORDS");
      System.exit(2);
    }
    Properties props = ScorerApp.load(Path.of(args[0]));
    long records = Long.parseLong(args[1]);
    props.setProperty("application.id", "lakeless-bench-" + UUID.randomUUID());
    props.putIfAbsent("consumer.auto.offset.reset", "earliest");
    props.putIfAbsent("state.dir", System.getProperty("java.io.tmpdir") + "/lakeless-bench-state");
    AtomicLong processed = new AtomicLong();
    long started = System.nanoTime();
    KafkaStreams streams = ScorerApp.start(props, processed);
    long first = 0;
    long firstCount = 0;
    long stall = Duration.ofSeconds(120).toNanos();
    long lastCount = -1;
    long lastProgress = System.nanoTime();
    try {
      while (processed.get() < records) {
        long now = System.nanoTime();
        long count = processed.get();
        if (first == 0 && count > 0) {
          first = now;
          firstCount = count;
        }
        if (count != lastCount) {
          lastCount = count;
          lastProgress = now;
        }
        if (now - lastProgress > stall || streams.state() == KafkaStreams.State.ERROR
            || streams.state() == KafkaStreams.State.NOT_RUNNING) {
          throw new IllegalStateException("stopped at " + count + " of " + records
              + " records (no progress for 120 s, or the app failed), state " + streams.state());
        }
        Thread.sleep(2);
      }
      long end = System.nanoTime();
      long done = processed.get();
      double seconds = (end - first) / 1e9;
      ScorerApp.Settings s = ScorerApp.Settings.from(props);
      System.out.printf(Locale.ROOT,
          "{\"records\": %d, \"seconds\": %.3f, \"rate\": %.1f, \"mode\": \"%s\", \"batch_size\": %d,"
              + " \"startup_seconds\": %.3f}%n",
          done - firstCount, seconds, (done - firstCount) / seconds,
          s.batchSize() > 1 ? "batched" : "per-record", s.batchSize(), (first - started) / 1e9);
    } finally {
      streams.close(Duration.ofSeconds(20));
    }
  }
}
