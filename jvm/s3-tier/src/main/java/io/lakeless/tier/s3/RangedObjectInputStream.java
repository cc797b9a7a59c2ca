package io.lakeless.tier.s3;

import java.io.IOException;
import java.io.InputStream;
import java.util.concurrent.Executor;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Bytes {@code [start, end)} of one object, read lazily in aligned chunks (one ranged GET each,
 * or the {@link ChunkCache}), so a reader that stops early never transfers the rest; the next
 * {@code readAhead} chunks are requested in the background as soon as one is needed.
 */
final class RangedObjectInputStream extends InputStream {
    private static final Logger LOG = LoggerFactory.getLogger(RangedObjectInputStream.class);

    /** Reads bytes {@code [from, to)} of an object; may return fewer at the object's end. */
    @FunctionalInterface
    interface RangeReader {
        byte[] read(String key, long from, long to) throws IOException;
    }

    private final RangeReader reader;
    private final ChunkCache cache;
    private final String key;
    private final long end;
    private final long objectSize;
    private final int chunkBytes;
    private final int readAhead;
    private final Executor executor;
    private long position;
    private byte[] chunk = new byte[0];
    private long chunkStart;
    private boolean closed;
    // For the DEBUG line at close(): how much a fetch read and how long it waited for S3.
    private final long opened = System.nanoTime();
    private long waitedNanos;
    private long bytesRead;
    private int loads;

    RangedObjectInputStream(RangeReader reader, ChunkCache cache, String key, long objectSize, long start, long end,
                            int chunkBytes, int readAhead, Executor executor) {
        this.reader = reader;
        this.cache = cache;
        this.key = key;
        this.objectSize = objectSize;
        this.position = start;
        this.end = Math.min(end, objectSize);
        this.chunkBytes = chunkBytes;
        this.readAhead = readAhead;
        this.executor = executor;
        this.chunkStart = start;
    }

    /** Load the chunk holding the current position (throws now rather than on the first read). */
    RangedObjectInputStream prefetch() throws IOException {
        if (position < end) {
            load();
        }
        return this;
    }

    @Override
    public int read() throws IOException {
        byte[] one = new byte[1];
        return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
    }

    @Override
    public int read(byte[] buffer, int offset, int length) throws IOException {
        if (closed) {
            throw new IOException("stream closed");
        }
        if (length == 0) {
            return 0;
        }
        if (position >= end) {
            return -1;
        }
        if (position < chunkStart || position >= chunkStart + chunk.length) {
            load();
            if (position >= chunkStart + chunk.length) {
                return -1; // the object is shorter than the segment size said
            }
        }
        int inChunk = (int) (position - chunkStart);
        int n = (int) Math.min(Math.min(length, chunk.length - inChunk), end - position);
        System.arraycopy(chunk, inChunk, buffer, offset, n);
        bytesRead += n;
        position += n;
        return n;
    }

    @Override
    public long skip(long n) {
        long skipped = Math.max(0, Math.min(n, end - position));
        position += skipped;
        return skipped;
    }

    @Override
    public int available() {
        if (position < chunkStart || position >= chunkStart + chunk.length) {
            return 0;
        }
        return (int) Math.min(chunkStart + chunk.length - position, end - position);
    }

    @Override
    public void close() {
        if (!closed && LOG.isDebugEnabled()) {
            LOG.debug("read {} bytes of {} from {} in {} ms, {} chunks, {} ms waiting for them", bytesRead, key,
                position - bytesRead, (System.nanoTime() - opened) / 1_000_000, loads, waitedNanos / 1_000_000);
        }
        closed = true;
        chunk = new byte[0];
    }

    private void load() throws IOException {
        long index = position / chunkBytes;
        // Whole aligned chunks (not [position, end)): the next fetch of this consumer, and other
        // consumers reading the same range, find them in the cache.
        long started = System.nanoTime();
        chunk = cache.get(key, index, chunkSize(index), () -> readChunk(index));
        waitedNanos += System.nanoTime() - started;
        loads++;
        chunkStart = index * chunkBytes;
        for (long next = index + 1; next <= index + readAhead && next * chunkBytes < objectSize; next++) {
            long ahead = next;
            cache.readAhead(key, ahead, chunkSize(ahead), () -> readChunk(ahead), executor);
        }
    }

    private long chunkSize(long index) {
        return Math.min(chunkBytes, objectSize - index * chunkBytes);
    }

    private byte[] readChunk(long index) throws IOException {
        long from = index * chunkBytes;
        return reader.read(key, from, from + chunkSize(index));
    }
}
