package io.lakeless.tier.s3;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.server.log.remote.storage.LogSegmentData;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentMetadata;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentMetadata.CustomMetadata;
import org.apache.kafka.server.log.remote.storage.RemoteResourceNotFoundException;
import org.apache.kafka.server.log.remote.storage.RemoteStorageException;
import org.apache.kafka.server.log.remote.storage.RemoteStorageManager;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.AwsCredentialsProvider;
import software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider;
import software.amazon.awssdk.auth.credentials.ProfileCredentialsProvider;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.awscore.retry.AwsRetryStrategy;
import software.amazon.awssdk.core.checksums.RequestChecksumCalculation;
import software.amazon.awssdk.core.checksums.ResponseChecksumValidation;
import software.amazon.awssdk.core.exception.SdkException;
import software.amazon.awssdk.core.sync.RequestBody;
import software.amazon.awssdk.http.apache5.Apache5HttpClient;
import software.amazon.awssdk.profiles.ProfileFile;
import software.amazon.awssdk.profiles.ProfileFileSupplier;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.s3.S3Client;
import software.amazon.awssdk.services.s3.model.CompletedPart;
import software.amazon.awssdk.services.s3.model.DeleteObjectsResponse;
import software.amazon.awssdk.services.s3.model.NoSuchKeyException;
import software.amazon.awssdk.services.s3.model.ObjectIdentifier;
import software.amazon.awssdk.services.s3.model.S3Exception;

/**
 * A KIP-405 {@link RemoteStorageManager} that keeps each tiered segment as six S3 objects: the
 * log itself and its offset, time, transaction (when there is one), producer-snapshot and
 * leader-epoch indexes, under
 * {@code <prefix><topic>-<partition>/<topic id>/<start offset, 20 digits>-<segment id>.<suffix>}.
 *
 * <p>Copies: one PUT per object up to {@code s3.multipart.threshold.bytes} (64 MiB), a multipart
 * upload in {@code s3.multipart.part.bytes} parts (16 MiB) above. A single PUT is the fewest
 * requests and needs no clean-up, and S3 takes up to 5 GiB in one PUT, more than a Kafka
 * segment can hold (2 GiB); but a failed attempt of a 1 GiB segment (Kafka's default size) would
 * resend all of it, while a failed part resends 16 MiB. A failed multipart upload is aborted so
 * no invisible parts stay billed. The log is written last.
 *
 * <p>Reads: a segment is read lazily in aligned ranged GETs of {@code s3.fetch.chunk.bytes}
 * (4 MiB) kept in an LRU cache ({@code s3.fetch.cache.bytes}, 128 MiB): the broker opens a
 * stream at the fetch position and reads about one fetch's worth (1 MiB) before closing it, so
 * an open-ended GET would send, and abort, the rest of the segment every time. The next
 * {@code s3.fetch.read.ahead.chunks} (2) chunks are read in the background, so a consumer
 * reading on rarely waits for a GET.
 *
 * <p>Errors: every failure is a {@link RemoteStorageException} (a missing object a
 * {@link RemoteResourceNotFoundException}); on a failed copy the broker logs it, deletes what
 * was written ({@link #deleteLogSegmentData}) and copies the segment again on its next run,
 * and it keeps the local segment until a copy succeeded: nothing is lost while S3 is away.
 */
public final class S3RemoteStorageManager implements RemoteStorageManager {
    private static final Logger LOG = LoggerFactory.getLogger(S3RemoteStorageManager.class);

    /** The object suffix of the log and of each index (Kafka's own file suffixes). */
    private static final Map<IndexType, String> SUFFIXES = new EnumMap<>(Map.of(
        IndexType.OFFSET, ".index",
        IndexType.TIMESTAMP, ".timeindex",
        IndexType.TRANSACTION, ".txnindex",
        IndexType.PRODUCER_SNAPSHOT, ".snapshot",
        IndexType.LEADER_EPOCH, ".leader-epoch-checkpoint"));
    private static final String LOG_SUFFIX = ".log";
    /** Background GETs at once (each partition being read needs about one). */
    private static final int READ_AHEAD_THREADS = 8;

    private S3TierConfig config;
    private S3Client s3;
    private ChunkCache cache;
    private ExecutorService readAhead;

    @Override
    public void configure(Map<String, ?> configs) {
        config = new S3TierConfig(configs);
        s3 = client(config);
        cache = new ChunkCache(config.fetchCacheBytes());
        var threads = new AtomicInteger();
        readAhead = Executors.newFixedThreadPool(READ_AHEAD_THREADS, task -> {
            Thread thread = new Thread(task, "lakeless-s3-read-ahead-" + threads.incrementAndGet());
            thread.setDaemon(true);
            return thread;
        });
        LOG.info("lakeless S3 tier: {}", config);
    }

    static S3Client client(S3TierConfig config) {
        var builder = S3Client.builder()
            .region(Region.of(config.region()))
            .forcePathStyle(config.pathStyle())
            .credentialsProvider(credentials(config))
            // Newer SDKs add x-amz-checksum-* headers and trailers that S3-compatible servers
            // refuse; send and check checksums only where an operation requires them.
            .requestChecksumCalculation(RequestChecksumCalculation.WHEN_REQUIRED)
            .responseChecksumValidation(ResponseChecksumValidation.WHEN_REQUIRED)
            .httpClientBuilder(Apache5HttpClient.builder().maxConnections(config.maxConnections()))
            .overrideConfiguration(o -> o
                .apiCallTimeout(Duration.ofMillis(config.apiCallTimeoutMs()))
                .apiCallAttemptTimeout(Duration.ofMillis(config.apiCallAttemptTimeoutMs()))
                .retryStrategy(AwsRetryStrategy.standardRetryStrategy().toBuilder()
                    .maxAttempts(config.maxAttempts()).build()));
        config.endpoint().ifPresent(builder::endpointOverride);
        return builder.build();
    }

    private static AwsCredentialsProvider credentials(S3TierConfig config) {
        if (config.accessKeyId().isPresent()) {
            return StaticCredentialsProvider.create(
                AwsBasicCredentials.create(config.accessKeyId().get(), config.secretAccessKey().value()));
        }
        if (config.credentialsFile().isPresent()) {
            // Re-read when the file changes: a rotated Kubernetes secret needs no broker restart.
            return ProfileCredentialsProvider.builder()
                .profileFile(ProfileFileSupplier.reloadWhenModified(
                    config.credentialsFile().get(), ProfileFile.Type.CREDENTIALS))
                .profileName(config.profile())
                .build();
        }
        return DefaultCredentialsProvider.builder().build();
    }

    /** The object key of the log ({@code suffix} ".log") or of one index of a segment. */
    String objectKey(RemoteLogSegmentMetadata metadata, String suffix) {
        TopicIdPartition tp = metadata.topicIdPartition();
        return config.prefix() + tp.topic() + "-" + tp.partition() + "/" + tp.topicId() + "/"
            + String.format("%020d", metadata.startOffset()) + "-" + metadata.remoteLogSegmentId().id() + suffix;
    }

    @Override
    public Optional<CustomMetadata> copyLogSegmentData(RemoteLogSegmentMetadata metadata, LogSegmentData data)
        throws RemoteStorageException {
        long started = System.nanoTime();
        String logKey = objectKey(metadata, LOG_SUFFIX);
        try {
            put(objectKey(metadata, SUFFIXES.get(IndexType.OFFSET)), RequestBody.fromFile(data.offsetIndex()));
            put(objectKey(metadata, SUFFIXES.get(IndexType.TIMESTAMP)), RequestBody.fromFile(data.timeIndex()));
            if (data.transactionIndex().isPresent()) {
                put(objectKey(metadata, SUFFIXES.get(IndexType.TRANSACTION)),
                    RequestBody.fromFile(data.transactionIndex().get()));
            }
            put(objectKey(metadata, SUFFIXES.get(IndexType.PRODUCER_SNAPSHOT)),
                RequestBody.fromFile(data.producerSnapshotIndex()));
            put(objectKey(metadata, SUFFIXES.get(IndexType.LEADER_EPOCH)),
                RequestBody.fromRemainingByteBuffer(data.leaderEpochIndex().duplicate()));
            long size = data.logSegment().toFile().length();
            if (size > config.multipartThresholdBytes()) {
                putMultipart(logKey, data.logSegment(), size);
            } else {
                put(logKey, RequestBody.fromFile(data.logSegment()));
            }
            LOG.info("copied segment {} of {} ({} bytes) to {} in {} ms", metadata.remoteLogSegmentId().id(),
                metadata.topicIdPartition(), size, location(logKey), (System.nanoTime() - started) / 1_000_000);
            return Optional.empty();
        } catch (SdkException | IOException | UncheckedIOException e) {
            LOG.warn("copying segment {} of {} to {} failed (the broker retries): {}",
                metadata.remoteLogSegmentId().id(), metadata.topicIdPartition(), location(logKey), e.toString());
            throw new RemoteStorageException("copying segment " + metadata.remoteLogSegmentId() + " to "
                + location(logKey) + " failed: " + e, e);
        }
    }

    private void put(String key, RequestBody body) {
        s3.putObject(b -> b.bucket(config.bucket()).key(key), body);
    }

    private void putMultipart(String key, Path file, long size) throws IOException {
        String uploadId = s3.createMultipartUpload(b -> b.bucket(config.bucket()).key(key)).uploadId();
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            List<CompletedPart> parts = new ArrayList<>();
            long partBytes = config.multipartPartBytes();
            for (int number = 1; (number - 1) * partBytes < size; number++) {
                long offset = (number - 1) * partBytes;
                int length = (int) Math.min(partBytes, size - offset);
                var buffer = channel.map(FileChannel.MapMode.READ_ONLY, offset, length);
                int partNumber = number;
                String etag = s3.uploadPart(b -> b.bucket(config.bucket()).key(key).uploadId(uploadId)
                    .partNumber(partNumber).contentLength((long) length),
                    RequestBody.fromRemainingByteBuffer(buffer)).eTag();
                parts.add(CompletedPart.builder().partNumber(partNumber).eTag(etag).build());
            }
            s3.completeMultipartUpload(b -> b.bucket(config.bucket()).key(key).uploadId(uploadId)
                .multipartUpload(m -> m.parts(parts)));
        } catch (SdkException | IOException e) {
            try {
                s3.abortMultipartUpload(b -> b.bucket(config.bucket()).key(key).uploadId(uploadId));
            } catch (SdkException abortFailed) {
                e.addSuppressed(abortFailed);
            }
            throw e;
        }
    }

    @Override
    public InputStream fetchLogSegment(RemoteLogSegmentMetadata metadata, int startPosition)
        throws RemoteStorageException {
        return fetch(metadata, startPosition, Long.MAX_VALUE);
    }

    @Override
    public InputStream fetchLogSegment(RemoteLogSegmentMetadata metadata, int startPosition, int endPosition)
        throws RemoteStorageException {
        if (endPosition < startPosition) {
            throw new IllegalArgumentException("end position " + endPosition + " < start position " + startPosition);
        }
        return fetch(metadata, startPosition, endPosition + 1L); // endPosition is inclusive
    }

    private InputStream fetch(RemoteLogSegmentMetadata metadata, int start, long end) throws RemoteStorageException {
        if (start < 0) {
            throw new IllegalArgumentException("start position " + start + " < 0");
        }
        String key = objectKey(metadata, LOG_SUFFIX);
        var stream = new RangedObjectInputStream(this::readRange, cache, key, metadata.segmentSizeInBytes(), start,
            end, config.fetchChunkBytes(), config.fetchReadAheadChunks(), readAhead);
        try {
            return stream.prefetch();
        } catch (IOException e) {
            throw asRemoteStorageException("reading " + location(key), e);
        }
    }

    /** Bytes {@code [from, to)} of an object, as one ranged GET; S3 errors wrapped in IOExceptions. */
    private byte[] readRange(String key, long from, long to) throws IOException {
        String range = "bytes=" + from + "-" + (to - 1);
        try (var in = s3.getObject(b -> b.bucket(config.bucket()).key(key).range(range))) {
            // Straight into an array of the right size: no growing buffer, one copy.
            long length = in.response().contentLength() != null ? in.response().contentLength() : to - from;
            byte[] data = new byte[(int) Math.min(length, to - from)];
            int n = 0;
            for (int got; n < data.length && (got = in.read(data, n, data.length - n)) >= 0; ) {
                n += got;
            }
            return n == data.length ? data : Arrays.copyOf(data, n);
        } catch (SdkException e) {
            throw new IOException("GET " + location(key) + " " + range + " failed: " + e, e);
        }
    }

    @Override
    public InputStream fetchIndex(RemoteLogSegmentMetadata metadata, IndexType indexType)
        throws RemoteStorageException {
        String key = objectKey(metadata, SUFFIXES.get(indexType));
        if (indexType == IndexType.TRANSACTION && metadata.isTxnIdxEmpty()) {
            throw new RemoteResourceNotFoundException("segment " + metadata.remoteLogSegmentId() + " has no "
                + "transaction index");
        }
        try {
            return s3.getObject(b -> b.bucket(config.bucket()).key(key));
        } catch (SdkException e) {
            throw asRemoteStorageException("reading " + location(key), e);
        }
    }

    @Override
    public void deleteLogSegmentData(RemoteLogSegmentMetadata metadata) throws RemoteStorageException {
        List<ObjectIdentifier> keys = new ArrayList<>();
        keys.add(ObjectIdentifier.builder().key(objectKey(metadata, LOG_SUFFIX)).build());
        SUFFIXES.values().forEach(s -> keys.add(ObjectIdentifier.builder().key(objectKey(metadata, s)).build()));
        String logKey = objectKey(metadata, LOG_SUFFIX);
        cache.invalidate(logKey);
        try {
            // Missing keys are no error: deleting again (the broker retries) succeeds.
            DeleteObjectsResponse response = s3.deleteObjects(b -> b.bucket(config.bucket())
                .delete(d -> d.objects(keys).quiet(true)));
            if (response.hasErrors() && !response.errors().isEmpty()) {
                var first = response.errors().get(0);
                throw new RemoteStorageException("deleting segment " + metadata.remoteLogSegmentId() + " from "
                    + location(logKey) + ": " + response.errors().size() + " objects not deleted, e.g. "
                    + first.key() + ": " + first.code() + " " + first.message());
            }
            LOG.info("deleted segment {} of {} from {}", metadata.remoteLogSegmentId().id(),
                metadata.topicIdPartition(), location(logKey));
        } catch (SdkException e) {
            throw asRemoteStorageException("deleting segment " + metadata.remoteLogSegmentId() + " from "
                + location(logKey), e);
        }
    }

    private String location(String key) {
        return "s3://" + config.bucket() + "/" + key;
    }

    private static RemoteStorageException asRemoteStorageException(String what, Exception e) {
        Throwable cause = e instanceof IOException && e.getCause() instanceof SdkException ? e.getCause() : e;
        if (cause instanceof NoSuchKeyException
            || (cause instanceof S3Exception s3e && s3e.statusCode() == 404)) {
            return new RemoteResourceNotFoundException(what + ": not found (" + cause.getMessage() + ")");
        }
        return new RemoteStorageException(what + " failed: " + cause, cause);
    }

    @Override
    public void close() {
        if (readAhead != null) {
            readAhead.shutdownNow();
            try {
                readAhead.awaitTermination(5, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        if (s3 != null) {
            s3.close();
        }
    }
}
