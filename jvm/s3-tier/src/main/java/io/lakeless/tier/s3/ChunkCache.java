package io.lakeless.tier.s3;

import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;

/**
 * Chunks of segment objects, recently read or being read ahead; least recently used evicted
 * first, bounded in bytes.
 *
 * <p>The broker serves one fetch of a remote segment by opening a stream at the fetch position
 * and reading about {@code max.partition.fetch.bytes} (1 MiB for most clients) before closing
 * it; a consumer's next fetch starts where that one ended. Aligned chunks larger than one fetch,
 * kept here, serve the next fetches from memory, and reading the following chunk ahead (in the
 * background, while the broker and the consumer work on this one) hides the latency of a GET.
 * An entry is a future, so a reader that wants a chunk being read ahead waits for that GET
 * instead of sending a second one.
 */
final class ChunkCache {
    /** Reads one chunk (a ranged GET). */
    @FunctionalInterface
    interface Loader {
        byte[] load() throws IOException;
    }

    private record Key(String objectKey, long chunk) {
    }

    private record Entry(CompletableFuture<byte[]> data, long bytes) {
    }

    private final long maxBytes;
    private long bytes;
    private final LinkedHashMap<Key, Entry> chunks = new LinkedHashMap<>(16, 0.75f, true);

    ChunkCache(long maxBytes) {
        this.maxBytes = maxBytes;
    }

    /** Chunk {@code chunk} ({@code size} bytes) of an object: cached, being read ahead, or read now. */
    byte[] get(String objectKey, long chunk, long size, Loader loader) throws IOException {
        var key = new Key(objectKey, chunk);
        CompletableFuture<byte[]> future;
        boolean mine = false;
        synchronized (this) {
            Entry entry = chunks.get(key);
            if (entry != null) {
                future = entry.data();
            } else {
                future = new CompletableFuture<>();
                mine = true;
                if (!add(key, new Entry(future, size))) {
                    future = null; // larger than the whole cache
                }
            }
        }
        if (future == null) {
            return loader.load();
        }
        if (mine) {
            load(key, future, loader);
        }
        try {
            return future.join();
        } catch (CompletionException e) {
            if (!mine) {
                return loader.load(); // a failed read-ahead: read here, for the data or a fresh error
            }
            throw e.getCause() instanceof IOException io ? io : new IOException(e.getCause());
        }
    }

    /** Start reading chunk {@code chunk} in the background unless it is cached or on its way. */
    void readAhead(String objectKey, long chunk, long size, Loader loader, Executor executor) {
        var key = new Key(objectKey, chunk);
        var future = new CompletableFuture<byte[]>();
        synchronized (this) {
            if (chunks.containsKey(key) || !add(key, new Entry(future, size))) {
                return;
            }
        }
        try {
            executor.execute(() -> load(key, future, loader));
        } catch (RejectedExecutionException e) { // closing
            forget(key, future);
            future.completeExceptionally(e);
        }
    }

    private void load(Key key, CompletableFuture<byte[]> future, Loader loader) {
        try {
            future.complete(loader.load());
        } catch (IOException | RuntimeException e) {
            forget(key, future);
            future.completeExceptionally(e);
        }
    }

    /** Add (caller holds the lock); false when the entry alone exceeds the budget. */
    private boolean add(Key key, Entry entry) {
        if (entry.bytes() > maxBytes) {
            return false;
        }
        chunks.put(key, entry);
        bytes += entry.bytes();
        var eldest = chunks.entrySet().iterator();
        while (bytes > maxBytes && eldest.hasNext()) {
            Map.Entry<Key, Entry> next = eldest.next();
            if (next.getKey().equals(key)) {
                continue;
            }
            bytes -= next.getValue().bytes();
            eldest.remove();
        }
        return true;
    }

    private synchronized void forget(Key key, CompletableFuture<byte[]> future) {
        Entry entry = chunks.get(key);
        if (entry != null && entry.data() == future) {
            chunks.remove(key);
            bytes -= entry.bytes();
        }
    }

    /** Forget every chunk of {@code objectKey} (its object was deleted). */
    synchronized void invalidate(String objectKey) {
        var entries = chunks.entrySet().iterator();
        while (entries.hasNext()) {
            Map.Entry<Key, Entry> entry = entries.next();
            if (entry.getKey().objectKey().equals(objectKey)) {
                bytes -= entry.getValue().bytes();
                entries.remove();
            }
        }
    }

    synchronized long bytes() {
        return bytes;
    }
}
