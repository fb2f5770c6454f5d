"""Round trip of one small map-reduce over 4 persisted partitions on a 2-process LocalCluster (a PIRLS pass)."""
import time, numpy as np
from dask.distributed import Client, LocalCluster

def make(i):
    return np.random.default_rng(i).normal(size=(20, 5))

def work(part, beta):
    return part @ beta

def total(*xs):
    return float(sum(x.sum() for x in xs))

if __name__ == "__main__":
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl, Client(cl) as c:
        parts = c.map(make, range(4))
        c.gather(parts)
        times = []
        for it in range(50):
            beta = np.full(5, it * 0.01)
            t = time.perf_counter()
            b = c.scatter(beta, broadcast=True)
            r = c.submit(total, *[c.submit(work, p, b, pure=False) for p in parts], pure=False)
            r.result()
            times.append(time.perf_counter() - t)
        print(f"map-reduce round trip over 4 persisted partitions: median {np.median(times) * 1e3:.1f} ms, "
              f"p90 {np.percentile(times, 90) * 1e3:.1f} ms")
