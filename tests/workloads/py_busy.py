"""A Python thread allocating at full speed while a tracer attaches: every
allocation it makes must carry its Python frames, none native ones.
Prints "ready", allocates until a line arrives on stdin, prints "done"."""
import sys
import threading

stop = threading.Event()


def wait_for_line():
    sys.stdin.readline()
    stop.set()


threading.Thread(target=wait_for_line, daemon=True).start()
print("ready", flush=True)
keep = []
i = 0
while not stop.is_set():
    block = bytearray(100)  # SITE:busy
    i += 1
    if i % 64 == 0:  # a sample of them stays live: the attach window's too
        keep.append(block)
print("done", flush=True)
