package io.lakeless.tier.s3;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;

import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.server.log.remote.storage.LogSegmentData;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentId;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentMetadata;
import org.apache.kafka.server.log.remote.storage.RemoteResourceNotFoundException;
import org.apache.kafka.server.log.remote.storage.RemoteStorageException;
import org.apache.kafka.server.log.remote.storage.RemoteStorageManager.IndexType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import software.amazon.awssdk.services.s3.S3Client;
import software.amazon.awssdk.services.s3.model.S3Object;

/** Against a real s3proxy (filesystem backend) started for the class. */
class S3RemoteStorageManagerTest {
    private static final String BUCKET = "tier-test";
    private static final int MIB = 1024 * 1024;

    @TempDir
    static Path shared;
    @TempDir
    Path tmp;

    private static S3ProxyServer proxy;
    private static S3Client admin;
    private final Random random = new Random(42);

    @BeforeAll
    static void startProxy() throws Exception {
        proxy = new S3ProxyServer(shared.resolve("s3")).start();
        admin = S3RemoteStorageManager.client(new S3TierConfig(config(proxy, Map.of())));
        admin.createBucket(b -> b.bucket(BUCKET));
    }

    @AfterAll
    static void stopProxy() throws Exception {
        if (admin != null) {
            admin.close();
        }
        if (proxy != null) {
            proxy.close();
        }
    }

    static Map<String, Object> config(S3ProxyServer server, Map<String, Object> overrides) {
        Map<String, Object> config = new HashMap<>(Map.of(
            "s3.bucket", BUCKET,
            "s3.endpoint", server.endpoint(),
            "s3.path.style", "true",
            "s3.region", "us-east-1",
            "s3.access.key.id", server.identity,
            "s3.secret.access.key", server.credential,
            "s3.max.attempts", "2",
            "s3.api.call.attempt.timeout.ms", "10000",
            "broker.id", 1)); // the broker adds its id; unknown keys are fine
        config.putAll(overrides);
        return config;
    }

    private S3RemoteStorageManager rsm(Map<String, Object> overrides) {
        return rsm(proxy, overrides);
    }

    private static S3RemoteStorageManager rsm(S3ProxyServer server, Map<String, Object> overrides) {
        S3RemoteStorageManager rsm = new S3RemoteStorageManager();
        rsm.configure(config(server, overrides));
        return rsm;
    }

    /** A segment's files (random bytes: the manager must not care what is in them). */
    private record Segment(RemoteLogSegmentMetadata metadata, LogSegmentData data, byte[] log,
                           Map<IndexType, byte[]> indexes) {
    }

    private Segment segment(String topic, int logBytes, boolean withTxnIndex) throws IOException {
        var tp = new TopicIdPartition(Uuid.randomUuid(), 3, topic);
        var metadata = new RemoteLogSegmentMetadata(RemoteLogSegmentId.generateNew(tp), 1000L, 1999L,
            System.currentTimeMillis(), 1, System.currentTimeMillis(), logBytes, Map.of(0, 1000L), !withTxnIndex);
        byte[] log = bytes(logBytes);
        Map<IndexType, byte[]> indexes = new HashMap<>();
        indexes.put(IndexType.OFFSET, bytes(8 * 1000));
        indexes.put(IndexType.TIMESTAMP, bytes(12 * 1000));
        indexes.put(IndexType.PRODUCER_SNAPSHOT, bytes(517));
        indexes.put(IndexType.LEADER_EPOCH, "0\n1\n0 1000\n".getBytes(StandardCharsets.UTF_8));
        if (withTxnIndex) {
            indexes.put(IndexType.TRANSACTION, bytes(34 * 10));
        }
        Path dir = Files.createDirectories(tmp.resolve(metadata.remoteLogSegmentId().id().toString()));
        var data = new LogSegmentData(write(dir.resolve("s.log"), log),
            write(dir.resolve("s.index"), indexes.get(IndexType.OFFSET)),
            write(dir.resolve("s.timeindex"), indexes.get(IndexType.TIMESTAMP)),
            withTxnIndex ? Optional.of(write(dir.resolve("s.txnindex"), indexes.get(IndexType.TRANSACTION)))
                : Optional.empty(),
            write(dir.resolve("s.snapshot"), indexes.get(IndexType.PRODUCER_SNAPSHOT)),
            ByteBuffer.wrap(indexes.get(IndexType.LEADER_EPOCH)));
        return new Segment(metadata, data, log, indexes);
    }

    private byte[] bytes(int n) {
        byte[] out = new byte[n];
        random.nextBytes(out);
        return out;
    }

    private static Path write(Path path, byte[] content) throws IOException {
        return Files.write(path, content);
    }

    private static byte[] readAll(InputStream in) throws IOException {
        try (in) {
            return in.readAllBytes();
        }
    }

    private static List<String> keysUnder(String prefix) {
        return admin.listObjectsV2Paginator(b -> b.bucket(BUCKET).prefix(prefix)).contents().stream()
            .map(S3Object::key).sorted().toList();
    }

    @Test
    void roundTripOfASegmentAndEveryIndex() throws Exception {
        try (var rsm = rsm(Map.of("s3.prefix", "cluster-a/"))) {
            Segment s = segment("sensor-clean", 3 * MIB + 123, true);
            assertEquals(Optional.empty(), rsm.copyLogSegmentData(s.metadata, s.data));

            assertArrayEquals(s.log, readAll(rsm.fetchLogSegment(s.metadata, 0)));
            for (IndexType type : IndexType.values()) {
                assertArrayEquals(s.indexes.get(type), readAll(rsm.fetchIndex(s.metadata, type)), type.name());
            }

            var tp = s.metadata.topicIdPartition();
            String base = "cluster-a/sensor-clean-3/" + tp.topicId() + "/00000000000000001000-"
                + s.metadata.remoteLogSegmentId().id();
            assertEquals(List.of(base + ".index", base + ".leader-epoch-checkpoint", base + ".log",
                base + ".snapshot", base + ".timeindex", base + ".txnindex"), keysUnder("cluster-a/sensor-clean-3/"));
        }
    }

    @Test
    void rangedReadsReturnExactlyTheRequestedBytes() throws Exception {
        int chunk = 64 * 1024;
        for (long cache : new long[] {0, 8L * chunk}) {
            try (var rsm = rsm(Map.of("s3.fetch.chunk.bytes", chunk, "s3.fetch.cache.bytes", cache))) {
                Segment s = segment("ranges", 5 * chunk + 77, false);
                rsm.copyLogSegmentData(s.metadata, s.data);
                int size = s.log.length;
                for (int start : new int[] {0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk + 5, size - 1}) {
                    assertArrayEquals(Arrays.copyOfRange(s.log, start, size),
                        readAll(rsm.fetchLogSegment(s.metadata, start)), "from " + start);
                    for (int end : new int[] {start, start + 1, chunk - 1, chunk, 2 * chunk + 3, size - 1}) {
                        if (end < start || end >= size) {
                            continue;
                        }
                        assertArrayEquals(Arrays.copyOfRange(s.log, start, end + 1), // end is inclusive
                            readAll(rsm.fetchLogSegment(s.metadata, start, end)), start + ".." + end);
                    }
                }
                // The broker reads a batch header, then the rest in odd sizes, then closes early.
                try (InputStream in = rsm.fetchLogSegment(s.metadata, chunk - 10)) {
                    byte[] head = in.readNBytes(17);
                    byte[] rest = in.readNBytes(chunk + 100);
                    assertArrayEquals(Arrays.copyOfRange(s.log, chunk - 10, chunk + 7), head);
                    assertArrayEquals(Arrays.copyOfRange(s.log, chunk + 7, 2 * chunk + 107), rest);
                }
                // Past the end: nothing, not an error (the broker asks for what its index says).
                assertEquals(0, readAll(rsm.fetchLogSegment(s.metadata, size)).length);
            }
        }
    }

    @Test
    void largeSegmentsAreUploadedInParts() throws Exception {
        var parts = Map.<String, Object>of("s3.multipart.threshold.bytes", 5 * MIB, "s3.multipart.part.bytes", 5 * MIB);
        try (var rsm = rsm(parts)) {
            Segment s = segment("multipart", 12 * MIB + 7, false);
            rsm.copyLogSegmentData(s.metadata, s.data);
            assertArrayEquals(s.log, readAll(rsm.fetchLogSegment(s.metadata, 0)));
            assertArrayEquals(Arrays.copyOfRange(s.log, 5 * MIB - 3, 10 * MIB + 2),
                readAll(rsm.fetchLogSegment(s.metadata, 5 * MIB - 3, 10 * MIB + 1)));
            String logKey = rsm.objectKey(s.metadata, ".log");
            assertEquals(12L * MIB + 7, admin.headObject(b -> b.bucket(BUCKET).key(logKey)).contentLength());
        }
    }

    @Test
    void aMissingTransactionIndexIsNotFound() throws Exception {
        try (var rsm = rsm(Map.of())) {
            Segment s = segment("no-txn", 1000, false);
            rsm.copyLogSegmentData(s.metadata, s.data);
            assertThrows(RemoteResourceNotFoundException.class, () -> rsm.fetchIndex(s.metadata, IndexType.TRANSACTION));
            // Metadata that claims an index which is not there: S3's 404, still "not found".
            var claims = new RemoteLogSegmentMetadata(s.metadata.remoteLogSegmentId(), 1000L, 1999L, 0L, 1, 0L, 1000,
                Map.of(0, 1000L), false);
            assertThrows(RemoteResourceNotFoundException.class, () -> rsm.fetchIndex(claims, IndexType.TRANSACTION));
        }
    }

    @Test
    void deleteRemovesEveryObjectAndCanBeRepeated() throws Exception {
        try (var rsm = rsm(Map.of())) {
            Segment s = segment("deleted", 100_000, true);
            Segment kept = segment("deleted", 1000, true);
            rsm.copyLogSegmentData(s.metadata, s.data);
            rsm.copyLogSegmentData(kept.metadata, kept.data);
            String dir = "deleted-3/" + s.metadata.topicIdPartition().topicId() + "/";
            assertEquals(6, keysUnder(dir).size());
            assertArrayEquals(s.log, readAll(rsm.fetchLogSegment(s.metadata, 0))); // now cached

            rsm.deleteLogSegmentData(s.metadata);

            assertEquals(List.of(), keysUnder(dir));
            assertThrows(RemoteResourceNotFoundException.class, () -> rsm.fetchLogSegment(s.metadata, 0));
            for (IndexType type : IndexType.values()) {
                assertThrows(RemoteResourceNotFoundException.class, () -> rsm.fetchIndex(s.metadata, type));
            }
            rsm.deleteLogSegmentData(s.metadata); // the broker may retry a delete
            assertArrayEquals(kept.log, readAll(rsm.fetchLogSegment(kept.metadata, 0)));
        }
    }

    @Test
    void everyOperationFailsLoudlyWhileS3IsDown() throws Exception {
        try (var own = new S3ProxyServer(tmp.resolve("own-s3")).start();
             var rsm = rsm(own, Map.of("s3.max.attempts", "1", "s3.fetch.cache.bytes", "0"))) {
            try (var client = S3RemoteStorageManager.client(new S3TierConfig(config(own, Map.of())))) {
                client.createBucket(b -> b.bucket(BUCKET));
            }
            Segment before = segment("outage", 10_000, true);
            rsm.copyLogSegmentData(before.metadata, before.data);

            own.stop();
            Segment during = segment("outage", 10_000, true);
            var copy = assertThrows(RemoteStorageException.class,
                () -> rsm.copyLogSegmentData(during.metadata, during.data));
            assertTrue(copy.getMessage().contains("failed"), copy.getMessage());
            for (var call : List.<org.junit.jupiter.api.function.Executable>of(
                () -> rsm.fetchLogSegment(before.metadata, 0),
                () -> rsm.fetchLogSegment(before.metadata, 10, 20),
                () -> rsm.fetchIndex(before.metadata, IndexType.OFFSET),
                () -> rsm.deleteLogSegmentData(before.metadata))) {
                var failure = assertThrows(RemoteStorageException.class, call);
                assertFalse(failure instanceof RemoteResourceNotFoundException,
                    "an outage must not look like a missing object: " + failure);
            }

            own.start(); // same port, same data: the broker's retry succeeds
            rsm.copyLogSegmentData(during.metadata, during.data);
            assertArrayEquals(during.log, readAll(rsm.fetchLogSegment(during.metadata, 0)));
            assertArrayEquals(before.log, readAll(rsm.fetchLogSegment(before.metadata, 0)));
        }
    }

    @Test
    void wrongCredentialsAreRefusedWithoutShowingTheSecret() throws Exception {
        String secret = "not-the-secret-0123456789";
        try (var rsm = rsm(Map.of("s3.secret.access.key", secret))) {
            Segment s = segment("denied", 1000, false);
            var failure = assertThrows(RemoteStorageException.class, () -> rsm.copyLogSegmentData(s.metadata, s.data));
            assertInstanceOf(software.amazon.awssdk.services.s3.model.S3Exception.class, failure.getCause());
            assertEquals(403, ((software.amazon.awssdk.services.s3.model.S3Exception) failure.getCause()).statusCode());
            assertFalse(failure.toString().contains(secret));
        }
        var config = new S3TierConfig(config(proxy, Map.of("s3.secret.access.key", secret)));
        assertFalse(config.toString().contains(secret), config.toString());
        assertTrue(config.toString().contains("credentials from config"), config.toString());
    }

    @Test
    void credentialsFromAnAwsCredentialsFile() throws Exception {
        Path file = write(tmp.resolve("credentials"), ("[default]\naws_access_key_id = " + proxy.identity
            + "\naws_secret_access_key = " + proxy.credential + "\n").getBytes(StandardCharsets.UTF_8));
        Map<String, Object> fromFile = config(proxy, Map.of());
        fromFile.remove("s3.access.key.id");
        fromFile.remove("s3.secret.access.key");
        fromFile.put("s3.credentials.file", file.toString());
        var rsm = new S3RemoteStorageManager();
        rsm.configure(fromFile);
        try (rsm) {
            Segment s = segment("from-file", 2000, false);
            rsm.copyLogSegmentData(s.metadata, s.data);
            assertArrayEquals(s.log, readAll(rsm.fetchLogSegment(s.metadata, 0)));
        }
    }
}
