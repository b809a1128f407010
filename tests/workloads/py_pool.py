"""A multiprocessing pool of forked workers: 6 tasks over 3 workers, each
task keeping 20 bytearrays of 10000 bytes in its worker (which exits
holding them)."""
import multiprocessing

kept = []


def work(n):
    kept.extend(bytearray(10000) for _ in range(20))  # SITE:worker
    return n


if __name__ == "__main__":
    with multiprocessing.get_context("fork").Pool(3) as pool:
        assert pool.map(work, range(6), chunksize=1) == list(range(6))
        pool.close()
        pool.join()
    print("done")
