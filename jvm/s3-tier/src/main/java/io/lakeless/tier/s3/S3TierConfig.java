package io.lakeless.tier.s3;

import java.net.URI;
import java.nio.file.Path;
import java.util.Map;
import java.util.Optional;

import org.apache.kafka.common.config.AbstractConfig;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.config.ConfigDef.Importance;
import org.apache.kafka.common.config.ConfigDef.Type;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.common.config.types.Password;

/**
 * Settings of {@link S3RemoteStorageManager}: the broker's {@code rsm.config.*} properties with
 * that prefix removed, e.g. {@code rsm.config.s3.bucket=lakeless}.
 *
 * <p>Credentials: {@code s3.access.key.id} with {@code s3.secret.access.key}, or
 * {@code s3.credentials.file} (an AWS shared-credentials file, profile {@code s3.profile}), or
 * else the AWS SDK's default chain (environment {@code AWS_ACCESS_KEY_ID}/{@code
 * AWS_SECRET_ACCESS_KEY}, {@code ~/.aws/credentials}, web identity, container and instance
 * roles). The secret is a {@link Password}: it never appears in {@link #toString()} or a log.
 */
public final class S3TierConfig extends AbstractConfig {
    public static final String BUCKET = "s3.bucket";
    public static final String PREFIX = "s3.prefix";
    public static final String REGION = "s3.region";
    public static final String ENDPOINT = "s3.endpoint";
    public static final String PATH_STYLE = "s3.path.style";
    public static final String ACCESS_KEY_ID = "s3.access.key.id";
    public static final String SECRET_ACCESS_KEY = "s3.secret.access.key";
    public static final String CREDENTIALS_FILE = "s3.credentials.file";
    public static final String PROFILE = "s3.profile";
    public static final String API_CALL_TIMEOUT_MS = "s3.api.call.timeout.ms";
    public static final String API_CALL_ATTEMPT_TIMEOUT_MS = "s3.api.call.attempt.timeout.ms";
    public static final String MAX_ATTEMPTS = "s3.max.attempts";
    public static final String MAX_CONNECTIONS = "s3.max.connections";
    public static final String MULTIPART_THRESHOLD_BYTES = "s3.multipart.threshold.bytes";
    public static final String MULTIPART_PART_BYTES = "s3.multipart.part.bytes";
    public static final String FETCH_CHUNK_BYTES = "s3.fetch.chunk.bytes";
    public static final String FETCH_CACHE_BYTES = "s3.fetch.cache.bytes";
    public static final String FETCH_READ_AHEAD_CHUNKS = "s3.fetch.read.ahead.chunks";

    private static final int MIB = 1024 * 1024;
    /** S3's smallest part (every part but the last). */
    static final int MIN_PART_BYTES = 5 * MIB;

    static final ConfigDef DEF = new ConfigDef()
        .define(BUCKET, Type.STRING, ConfigDef.NO_DEFAULT_VALUE, new ConfigDef.NonEmptyString(),
            Importance.HIGH, "Bucket that receives the tiered segments.")
        .define(PREFIX, Type.STRING, "", Importance.MEDIUM,
            "Prefix of every object key (e.g. 'cluster-a/'), so several clusters can share a bucket.")
        .define(REGION, Type.STRING, "us-east-1", Importance.MEDIUM,
            "Region of the bucket (any value for S3-compatible servers).")
        .define(ENDPOINT, Type.STRING, "", Importance.MEDIUM,
            "Endpoint URL override for S3-compatible servers, e.g. http://127.0.0.1:19000; empty: AWS.")
        .define(PATH_STYLE, Type.BOOLEAN, false, Importance.MEDIUM,
            "Path-style addressing (endpoint/bucket/key) instead of virtual hosts; most local servers need it.")
        .define(ACCESS_KEY_ID, Type.STRING, "", Importance.MEDIUM,
            "Access key id; empty: the credentials file, else the SDK's default chain.")
        .define(SECRET_ACCESS_KEY, Type.PASSWORD, "", Importance.MEDIUM,
            "Secret access key (never logged).")
        .define(CREDENTIALS_FILE, Type.STRING, "", Importance.MEDIUM,
            "AWS shared-credentials file (aws_access_key_id, aws_secret_access_key) to read the keys from.")
        .define(PROFILE, Type.STRING, "default", Importance.LOW,
            "Profile of the credentials file.")
        .define(API_CALL_TIMEOUT_MS, Type.LONG, 300_000L, ConfigDef.Range.atLeast(1), Importance.LOW,
            "Most time one S3 operation may take, its retries included.")
        .define(API_CALL_ATTEMPT_TIMEOUT_MS, Type.LONG, 120_000L, ConfigDef.Range.atLeast(1), Importance.LOW,
            "Most time one attempt (one HTTP request) may take.")
        .define(MAX_ATTEMPTS, Type.INT, 3, ConfigDef.Range.atLeast(1), Importance.LOW,
            "Attempts per S3 request (the SDK's standard retries); the broker retries failed copies on its own.")
        .define(MAX_CONNECTIONS, Type.INT, 50, ConfigDef.Range.atLeast(1), Importance.LOW,
            "HTTP connection pool size (copier and reader threads share it).")
        .define(MULTIPART_THRESHOLD_BYTES, Type.LONG, 64L * MIB, ConfigDef.Range.atLeast(MIN_PART_BYTES),
            Importance.LOW, "Segments larger than this are uploaded in parts, smaller ones with one PUT.")
        .define(MULTIPART_PART_BYTES, Type.INT, 16 * MIB, ConfigDef.Range.atLeast(MIN_PART_BYTES),
            Importance.LOW, "Part size of multipart uploads.")
        .define(FETCH_CHUNK_BYTES, Type.INT, 4 * MIB, ConfigDef.Range.atLeast(4096), Importance.LOW,
            "Segments are read in ranged GETs of this size, aligned, so a fetch reads only what it uses.")
        .define(FETCH_CACHE_BYTES, Type.LONG, 128L * MIB, ConfigDef.Range.atLeast(0), Importance.LOW,
            "Memory for recently read chunks (consecutive fetches of a consumer hit them); 0: no cache.")
        .define(FETCH_READ_AHEAD_CHUNKS, Type.INT, 2, ConfigDef.Range.between(0, 16), Importance.LOW,
            "Chunks after the one being read that are read in the background (needs the cache); 0: none.");

    public S3TierConfig(Map<String, ?> props) {
        super(DEF, props, false); // doLog=false: values are summarised by toString(), secrets masked
        if (!getString(ACCESS_KEY_ID).isEmpty() && getPassword(SECRET_ACCESS_KEY).value().isEmpty()) {
            throw new ConfigException(SECRET_ACCESS_KEY + " is required with " + ACCESS_KEY_ID);
        }
        if (!getString(ACCESS_KEY_ID).isEmpty() && !getString(CREDENTIALS_FILE).isEmpty()) {
            throw new ConfigException("set either " + ACCESS_KEY_ID + " or " + CREDENTIALS_FILE + ", not both");
        }
        if (!getString(ENDPOINT).isEmpty()) {
            try {
                URI uri = URI.create(getString(ENDPOINT));
                if (uri.getScheme() == null || uri.getHost() == null) {
                    throw new IllegalArgumentException("no scheme or host");
                }
            } catch (IllegalArgumentException e) {
                throw new ConfigException(ENDPOINT, getString(ENDPOINT), "not a URL: " + e.getMessage());
            }
        }
    }

    public String bucket() {
        return getString(BUCKET);
    }

    public String prefix() {
        return getString(PREFIX);
    }

    public String region() {
        return getString(REGION);
    }

    public Optional<URI> endpoint() {
        String endpoint = getString(ENDPOINT);
        return endpoint.isEmpty() ? Optional.empty() : Optional.of(URI.create(endpoint));
    }

    public boolean pathStyle() {
        return getBoolean(PATH_STYLE);
    }

    public Optional<String> accessKeyId() {
        String id = getString(ACCESS_KEY_ID);
        return id.isEmpty() ? Optional.empty() : Optional.of(id);
    }

    public Password secretAccessKey() {
        return getPassword(SECRET_ACCESS_KEY);
    }

    public Optional<Path> credentialsFile() {
        String file = getString(CREDENTIALS_FILE);
        return file.isEmpty() ? Optional.empty() : Optional.of(Path.of(file));
    }

    public String profile() {
        return getString(PROFILE);
    }

    public long apiCallTimeoutMs() {
        return getLong(API_CALL_TIMEOUT_MS);
    }

    public long apiCallAttemptTimeoutMs() {
        return getLong(API_CALL_ATTEMPT_TIMEOUT_MS);
    }

    public int maxAttempts() {
        return getInt(MAX_ATTEMPTS);
    }

    public int maxConnections() {
        return getInt(MAX_CONNECTIONS);
    }

    public long multipartThresholdBytes() {
        return getLong(MULTIPART_THRESHOLD_BYTES);
    }

    public int multipartPartBytes() {
        return getInt(MULTIPART_PART_BYTES);
    }

    public int fetchChunkBytes() {
        return getInt(FETCH_CHUNK_BYTES);
    }

    public long fetchCacheBytes() {
        return getLong(FETCH_CACHE_BYTES);
    }

    public int fetchReadAheadChunks() {
        return getInt(FETCH_READ_AHEAD_CHUNKS);
    }

    /** Where the credentials come from, never what they are. */
    String credentialsSource() {
        if (accessKeyId().isPresent()) {
            return "config (" + ACCESS_KEY_ID + ")";
        }
        return credentialsFile().map(f -> "file " + f + " [" + profile() + "]").orElse("default provider chain");
    }

    @Override
    public String toString() {
        return "bucket=" + bucket() + ", prefix='" + prefix() + "', region=" + region()
            + ", endpoint=" + endpoint().map(URI::toString).orElse("(AWS)") + ", path-style=" + pathStyle()
            + ", credentials from " + credentialsSource() + ", multipart above " + multipartThresholdBytes()
            + " bytes in parts of " + multipartPartBytes() + ", fetch chunks " + fetchChunkBytes()
            + " bytes, cache " + fetchCacheBytes() + " bytes, read ahead " + fetchReadAheadChunks() + " chunks";
    }
}
