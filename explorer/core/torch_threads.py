"""How many threads torch's parallel loops use on each thread of the window.

Why the window does not leave this to torch: on Linux, PyTorch's parallel loops run on libgomp
(GNU OpenMP). Every thread that starts a parallel loop gets its own pool of helper threads, and
after a loop the helpers spin for a moment so that the next loop starts at once. libgomp lets them
spin only while it manages no more threads than there are CPUs. Beyond that they sleep straight
away, and every later loop first waits for a helper to wake up. The window's GUI thread, its run
lane and its statistics lane each used to start parallel loops, which passes that limit on any
machine, and the run lane's conv and render then take about 1.6x as long. On a 2-core VM
(tests/benchmarks/bench_torch_threads.py), conv1 of the default stack took 9.8 ms instead of 6.4 ms
and its render 6.1 ms instead of 3.6 ms; a script that has torch to itself takes 5.2 and 3.5.

So only work that a user waits for (runs, training, insight, walkthrough captures) uses torch's full
width. Everything else runs torch on one thread: the GUI thread, statistics and kernel weights.

``torch.set_num_threads`` sets the calling thread's count. It also sets the default for threads
that have not used torch yet, so every thread of the window sets its own count (see
explorer.core.jobs.Lane); no thread relies on that default."""

from __future__ import annotations

import torch

# torch's own choice (or OMP_NUM_THREADS), read once before anything here changes it: the width
# that the lanes a user waits for keep.
_FULL_WIDTH = max(1, torch.get_num_threads())


def full_width() -> int:
    """The thread count torch would use on its own: the CPU cores, or OMP_NUM_THREADS."""
    return _FULL_WIDTH


def use_torch_threads(count: int) -> None:
    """Parallel torch loops on the calling thread use ``count`` threads (1: none start)."""
    if count < 1:
        raise ValueError(f"a thread needs at least one torch thread, not {count}")
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
