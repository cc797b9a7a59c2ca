package io.lakeless.tier.s3;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The cache and its read-ahead alone (no S3): budgets, shared GETs, failures. */
class ChunkCacheTest {
    private final ExecutorService executor = Executors.newFixedThreadPool(2);
    private final AtomicInteger loads = new AtomicInteger();

    @AfterEach
    void stop() throws InterruptedException {
        executor.shutdownNow();
        executor.awaitTermination(5, TimeUnit.SECONDS);
    }

    private ChunkCache.Loader chunk(int size, byte fill) {
        return () -> {
            loads.incrementAndGet();
            byte[] data = new byte[size];
            java.util.Arrays.fill(data, fill);
            return data;
        };
    }

    @Test
    void aCachedChunkIsReadOnceAndTheBudgetHolds() throws IOException {
        var cache = new ChunkCache(300);
        assertArrayEquals(new byte[] {1, 1}, cache.get("k", 0, 2, chunk(2, (byte) 1)));
        cache.get("k", 0, 2, chunk(2, (byte) 9));
        assertEquals(1, loads.get());
        for (int i = 1; i <= 5; i++) {
            cache.get("k", i, 100, chunk(100, (byte) i));
        }
        assertTrue(cache.bytes() <= 300, "cached " + cache.bytes());
        cache.get("k", 5, 100, chunk(100, (byte) 5)); // the newest is still there
        assertEquals(6, loads.get());
        cache.invalidate("k");
        assertEquals(0, cache.bytes());
    }

    @Test
    void aReaderWaitsForTheReadAheadInsteadOfSendingASecondGet() throws Exception {
        var cache = new ChunkCache(1000);
        var release = new CountDownLatch(1);
        cache.readAhead("k", 1, 10, () -> {
            loads.incrementAndGet();
            try {
                release.await();
            } catch (InterruptedException e) {
                throw new IOException(e);
            }
            return new byte[10];
        }, executor);
        executor.execute(release::countDown);
        assertEquals(10, cache.get("k", 1, 10, chunk(10, (byte) 7)).length);
        assertEquals(1, loads.get());
        cache.readAhead("k", 1, 10, chunk(10, (byte) 7), executor); // already there: no GET
        assertEquals(1, loads.get());
    }

    @Test
    void aFailedReadAheadIsRetriedByTheReaderAndItsErrorIsFresh() throws Exception {
        var cache = new ChunkCache(1000);
        var failed = new CountDownLatch(1);
        cache.readAhead("k", 0, 10, () -> {
            failed.countDown();
            throw new IOException("S3 is away");
        }, executor);
        assertTrue(failed.await(5, TimeUnit.SECONDS));
        for (long deadline = System.nanoTime() + 5_000_000_000L; cache.bytes() > 0; Thread.sleep(10)) {
            assertTrue(System.nanoTime() < deadline, "the failed read-ahead stays cached");
        }
        assertArrayEquals(new byte[10], cache.get("k", 0, 10, () -> new byte[10]));
        var error = assertThrows(IOException.class, () -> cache.get("k", 3, 10, () -> {
            throw new IOException("still away");
        }));
        assertEquals("still away", error.getMessage());
        assertEquals(10, cache.bytes()); // the failure is not cached
    }

    @Test
    void withoutABudgetNothingIsCachedOrReadAhead() throws IOException {
        var cache = new ChunkCache(0);
        cache.get("k", 0, 10, chunk(10, (byte) 1));
        cache.get("k", 0, 10, chunk(10, (byte) 1));
        cache.readAhead("k", 1, 10, chunk(10, (byte) 1), executor);
        assertEquals(2, loads.get());
        assertEquals(0, cache.bytes());
    }
}
