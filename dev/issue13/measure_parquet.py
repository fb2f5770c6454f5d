"""One 1e6-row partition of the benchmark data as Parquet: size, write and read time."""
import time, os, numpy as np, pyarrow as pa, pyarrow.parquet as pq
rng = np.random.default_rng(0)
n, nu, ni = 1_000_000, 100_000, 10_000
bu, bi = rng.normal(0, 0.5, nu), rng.normal(0, 0.3, ni)          # the effects: drawn once, same in every chunk
user = rng.integers(0, nu, n, dtype=np.int32); item = rng.integers(0, ni, n, dtype=np.int32)
x = rng.normal(size=n)
y = 1 + 0.5 * x + bu[user] + bi[item] + rng.normal(size=n)
t = pa.table({"user": user, "item": item, "x": x, "y": y})
t0 = time.perf_counter(); pq.write_table(t, "/tmp/part0.parquet", compression="zstd"); tw = time.perf_counter() - t0
t0 = time.perf_counter(); df = pq.read_table("/tmp/part0.parquet").to_pandas(); tr = time.perf_counter() - t0
print(f"1e6 rows: {os.path.getsize('/tmp/part0.parquet') / 2**20:.1f} MB on disk (zstd), write {tw:.2f}s, read->pandas {tr:.2f}s, "
      f"in memory {df.memory_usage(deep=True).sum() / 2**20:.0f} MB")
os.remove("/tmp/part0.parquet")
