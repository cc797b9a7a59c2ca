package io.lakeless.streams;

import io.lakeless.common.CleanDecoder;
import io.lakeless.common.ModelSource;
import io.lakeless.common.Pipeline;
import io.lakeless.common.RegistryFollower;
import io.lakeless.common.SchemaRegistry;
import java.io.IOException;
import java.io.Reader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;

/**
 * The Kafka Streams scorer: NAME.clean -> the registry's live model (hot swap) -> NAME.anomalies
 * (and NAME.scores with lakeless.all.scores=true).
 *
 * <p>{@code java -cp 'lakeless-streams.jar:lib/*' io.lakeless.streams.ScorerApp app.properties}
 * where the file holds the Kafka Streams settings (bootstrap.servers, application.id, security)
 * and the lakeless.* settings of {@link Settings}.
 */
public final class ScorerApp {
  private ScorerApp() {}

  /** The lakeless.* settings; every other property goes to Kafka Streams and the clients. */
  public record Settings(String pipeline, Path schemaFile, String model, String modelsTopic,
      int batchSize, Duration batchMs, boolean allScores, int topK, Duration registryPoll) {
    public static Settings from(Properties p) {
      String schema = p.getProperty("lakeless.schema.file");
      return new Settings(
          p.getProperty("lakeless.pipeline", Pipeline.CAR_FLEET),
          schema == null ? null : Path.of(schema),
          p.getProperty("lakeless.model"),
          p.getProperty("lakeless.models.topic", RegistryFollower.TOPIC),
          Integer.parseInt(p.getProperty("lakeless.batch.size", "1")),
          Duration.ofMillis(Long.parseLong(p.getProperty("lakeless.batch.ms", "100"))),
          Boolean.parseBoolean(p.getProperty("lakeless.all.scores", "false")),
          Integer.parseInt(p.getProperty("lakeless.top.k", "3")),
          Duration.ofMillis(Long.parseLong(p.getProperty("lakeless.registry.poll.ms", "500"))));
    }
  }

  /** The pipeline: from the schema file, else from lakeless.schemas. */
  public static Pipeline pipeline(Settings s, Properties props) throws IOException {
    Pipeline p = s.schemaFile() != null
        ? Pipeline.fromFile(s.pipeline(), s.schemaFile())
        : SchemaRegistry.read(clients(props),
            props.getProperty("lakeless.schemas.topic", SchemaRegistry.TOPIC), Duration.ofSeconds(30))
            .pipeline(s.pipeline());
    java.util.Map<String, String> renamed = new java.util.HashMap<>();
    for (String role : new String[] {"clean", "anomalies", "scores"}) {
      String topic = props.getProperty("lakeless.topic." + role);
      if (topic != null) {
        renamed.put(role, topic);
      }
    }
    return p.withTopics(renamed);
  }

  /** The client settings of {@code props}: everything but the lakeless.* keys. */
  public static Properties clients(Properties props) {
    Properties out = new Properties();
    props.stringPropertyNames().stream().filter(k -> !k.startsWith("lakeless."))
        .forEach(k -> out.put(k, props.getProperty(k)));
    return out;
  }

  /** source NAME.clean -> score -> sinks NAME.anomalies, NAME.scores. */
  public static Topology topology(Pipeline pipeline, Settings s, Supplier<ModelSource> models,
      AtomicLong processed) {
    CleanDecoder decoder = new CleanDecoder(pipeline);
    Topology t = new Topology();
    t.addSource("clean", Serdes.ByteArray().deserializer(), Serdes.ByteArray().deserializer(),
        pipeline.topic("clean"));
    t.addProcessor("score", () -> new ScoreProcessor(decoder, models, s.topK(), s.batchSize(),
        s.batchMs(), s.allScores(), processed), "clean");
    t.addSink(ScoreProcessor.ANOMALIES, pipeline.topic("anomalies"), Serdes.ByteArray().serializer(),
        Serdes.ByteArray().serializer(), "score");
    t.addSink(ScoreProcessor.SCORES, pipeline.topic("scores"), Serdes.ByteArray().serializer(),
        Serdes.ByteArray().serializer(), "score");
    return t;
  }

  /** A follower per processor, reading the registry with the app's client settings. */
  public static Supplier<ModelSource> follower(Pipeline pipeline, Settings s, Properties kafka) {
    String model = s.model() == null ? pipeline.model() : s.model();
    Properties clients = clients(kafka);
    for (String k : new String[] {StreamsConfig.APPLICATION_ID_CONFIG, "num.stream.threads",
        "processing.guarantee", "commit.interval.ms", "state.dir"}) {
      clients.remove(k);
    }
    return () -> new RegistryFollower(clients, s.modelsTopic(), model, pipeline.name(),
        pipeline.current().featureNames(), Duration.ofSeconds(60), s.registryPoll());
  }

  /** Kafka Streams settings with the scorer's defaults. */
  public static Properties streamsConfig(Properties props, Settings s) {
    Properties config = clients(props);
    config.putIfAbsent(StreamsConfig.APPLICATION_ID_CONFIG, "lakeless-streams-scorer");
    config.putIfAbsent("consumer.max.poll.records", "2000");
    config.putIfAbsent("producer.linger.ms", "20");
    config.putIfAbsent("producer.batch.size", "262144");
    return config;
  }

  public static KafkaStreams start(Properties props, AtomicLong processed) throws IOException {
    Settings s = Settings.from(props);
    Pipeline pipeline = pipeline(s, props);
    KafkaStreams streams = new KafkaStreams(
        topology(pipeline, s, follower(pipeline, s, props), processed), streamsConfig(props, s));
    streams.start();
    return streams;
  }

  public static Properties load(Path file) throws IOException {
    Properties props = new Properties();
    try (Reader r = Files.newBufferedReader(file)) {
      props.load(r);
    }
    return props;
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 1) {
      System.err.println("usage: ScorerApp app.properties");
      System.exit(2);
    }
    KafkaStreams streams = start(load(Path.of(args[0])), new AtomicLong());
    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      streams.close(Duration.ofSeconds(30));
      stopped.countDown();
    }));
    stopped.await();
  }
}
