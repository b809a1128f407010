"""A Python workload with a known peak: 1000 bytes objects of 10000 bytes
held in a list, all freed, then 10 of 5000 bytes kept (less than the peak).
Prints "ready" first and "done" at the end, then waits for the end of its
input. It sleeps a while after each step: the tracer resolves Python stacks
when it polls (every 0.25 s), and at exit the interpreter has freed the code
objects a stack captured since the last poll would name."""
import sys
import time

print("ready", flush=True)
big = [bytes(10000) for _ in range(1000)]  # SITE:peak
time.sleep(0.6)
del big
small = [bytes(5000) for _ in range(10)]  # SITE:after
time.sleep(0.6)
print("done", flush=True)
sys.stdin.read()
