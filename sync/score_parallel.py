"""Score a portfolio on every core: forked workers take chunks of accounts from a shared queue and send
their results back compactly, giving exactly `scoring.score_portfolio`'s results, percentiles included.

Scoring stays pure (it lives in `scoring/`); this module only splits the work and moves bytes:

  work queue    a pipe pre-filled with chunk numbers; each process (parent included) reads 4 bytes at a
                time, so chunks are claimed once each, and a faster process simply claims more of them.
  results       one pipe per worker; a frame is an 8-byte length + a pickle. Results travel as plain
                constructor arguments (a per-class reducer), not as pickled instance state.
  percentiles   when the model ranks accounts against each other, every process first computes signals
                for the chunks it claims and sends the ranked columns; the parent merges them in account
                order into the same `Populations` the serial path builds, sends it back, and each process
                scores the chunks whose signals it holds.

Workers are forked (Linux only), so facts, history and the model are shared copy-on-write rather than
pickled. A worker that fails or dies costs time, not results: the parent scores any chunk that never came
back itself (and so raises the real error, with its real traceback, if the scoring code is at fault)."""

from __future__ import annotations

import copyreg
import dataclasses
import io
import os
import pickle
import queue
import signal
import struct
import sys
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any

import structlog

from healthsync.scoring.base import (
    AccountFacts,
    HealthResult,
    HistoryFacts,
    Intent,
    OwnerSpec,
    PastResult,
    ScoredAccount,
)
from healthsync.scoring.model import HealthModel, Populations
from healthsync.scoring.playbook import Playbook
from healthsync.scoring.portfolio import (
    collector_paused,
    percentile_columns,
    portfolio_signals,
    score_portfolio,
    score_signals,
)

log = structlog.get_logger("healthsync.score")

CHUNK_ACCOUNTS = 400  # small enough that a chunk's results fit the pipe; large enough that claims are rare
MIN_PARALLEL_ACCOUNTS = 2_000  # below this a fork costs more than it saves
_MAX_CHUNKS = 8_000  # chunk numbers must fit the work pipe before any process reads (4 bytes each, 64 KiB)
_INDEX = struct.Struct("<I")
_LENGTH = struct.Struct("<Q")
_PIPE_BYTES = 1 << 20  # Linux lets an unprivileged process grow a pipe to 1 MiB (fs.pipe-max-size)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def can_fork() -> bool:
    """Forking without exec is only trusted on Linux (macOS system libraries are not fork-safe)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


def score_portfolio_parallel(
    facts: Sequence[AccountFacts],
    model: HealthModel,
    playbook: Playbook | None,
    history: Mapping[str, Sequence[PastResult]],
    as_of: datetime,
    workers: int | None = None,
    *,
    chunk_accounts: int = CHUNK_ACCOUNTS,
) -> list[ScoredAccount]:
    """`score_portfolio` on `workers` processes (default: every core this process may use). Falls back to
    the serial path for small portfolios, one core, or platforms without a trusted fork."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware (UTC)")
    if chunk_accounts < 1:
        raise ValueError("chunk_accounts must be at least 1")
    workers = available_cores() if workers is None else workers
    if workers < 2 or len(facts) < MIN_PARALLEL_ACCOUNTS or not can_fork():
        return score_portfolio(facts, model, playbook, history, as_of)
    with collector_paused():  # also keeps the workers' collectors from touching (and copying) the heap
        return _ParallelRun(facts, model, playbook, history, as_of, workers, chunk_accounts).run()


# ------------------------------------------------------------------------------------------ encoding


def _constructor_reducer(cls: type):
    """Pickle a frozen dataclass as `cls(*fields)`: one C-level call to rebuild, no per-field state."""
    fields = attrgetter(*(f.name for f in dataclasses.fields(cls)))
    return lambda obj: (cls, fields(obj))


_DISPATCH = dict(copyreg.dispatch_table)
_DISPATCH.update({cls: _constructor_reducer(cls)
                  for cls in (ScoredAccount, HealthResult, HistoryFacts, Intent, OwnerSpec)})


def encode(value: Any) -> bytes:
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _DISPATCH
    pickler.dump(value)
    return buffer.getvalue()


def _write_frame(fd: int, value: Any) -> None:
    payload = encode(value)
    view = memoryview(_LENGTH.pack(len(payload)) + payload)
    while view:
        view = view[os.write(fd, view):]


def _read_exactly(stream, size: int) -> bytes | None:
    data = stream.read(size)
    return data if len(data) == size else None


def _read_frame(stream) -> Any:
    """The next value on a stream of frames, or None at end of stream (the writer exited)."""
    header = _read_exactly(stream, _LENGTH.size)
    if header is None:
        return None
    payload = _read_exactly(stream, _LENGTH.unpack(header)[0])
    return None if payload is None else pickle.loads(payload)


def _grow_pipe(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    except (ImportError, AttributeError, OSError):
        pass  # a smaller pipe only means more waiting, never different results


def _claims(work_fd: int):
    """Chunk numbers from the shared work pipe until it is empty (reads of 4 bytes are atomic)."""
    while True:
        data = os.read(work_fd, _INDEX.size)
        if len(data) < _INDEX.size:
            return
        yield _INDEX.unpack(data)[0]


# ------------------------------------------------------------------------------------------ the run


@dataclasses.dataclass
class _Worker:
    pid: int
    results_fd: int  # parent reads
    control_fd: int  # parent writes (populations)
    alive: bool = True
    signals_done: bool = False
    error: str | None = None
    status: int = 0  # exit status once reaped


class _ParallelRun:
    def __init__(self, facts, model, playbook, history, as_of, workers: int, chunk_accounts: int):
        self.facts, self.model, self.playbook, self.history, self.as_of = facts, model, playbook, history, as_of
        self.workers = workers
        size = max(chunk_accounts, -(-len(facts) // _MAX_CHUNKS))
        self.bounds = [(lo, min(lo + size, len(facts))) for lo in range(0, len(facts), size)]
        self.ranked = bool(model.percentile_measures())
        self.results: list[list[ScoredAccount] | None] = [None] * len(self.bounds)
        self.columns: dict[int, tuple[dict[str, list], list]] = {}
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()

    # ---------------------------------------------------------------- per chunk (parent and workers)

    def signals_of(self, chunk: int):
        lo, hi = self.bounds[chunk]
        return portfolio_signals(self.facts[lo:hi], self.model, self.as_of)

    def score(self, chunk: int, signals, segments, populations: Populations) -> list[ScoredAccount]:
        lo, hi = self.bounds[chunk]
        return score_signals(self.facts[lo:hi], signals, segments, self.model, self.playbook, self.history,
                             self.as_of, populations)

    # ---------------------------------------------------------------- parent

    def run(self) -> list[ScoredAccount]:
        work_read, work_write = os.pipe()
        os.write(work_write, b"".join(_INDEX.pack(i) for i in range(len(self.bounds))))
        os.close(work_write)  # once drained, reads return end-of-file
        workers: list[_Worker] = []
        readers: list[threading.Thread] = []
        try:
            for _ in range(self.workers - 1):
                workers.append(self._fork(work_read, workers))
            readers = [threading.Thread(target=self._receive, args=(w,), daemon=True) for w in workers]
            for reader in readers:
                reader.start()
            if self.ranked:
                self._run_ranked(work_read, workers)
            else:
                self._run_independent(work_read, workers)
        except BaseException:
            for worker in workers:  # our own forked workers, by pid: their results are no longer wanted
                try:
                    os.kill(worker.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            raise
        finally:
            for reader in readers:
                reader.join()  # each ends at its worker's end of stream
            os.close(work_read)
            self._reap(workers)
        for worker in workers:
            if worker.error or worker.status:
                log.warning("score_worker_failed", pid=worker.pid, exit_status=worker.status, error=worker.error,
                            note="its chunks were scored in the main process")
        return [scored for chunk in self.results for scored in chunk]

    def _run_independent(self, work_read: int, workers: list[_Worker]) -> None:
        empty = Populations()
        for chunk in _claims(work_read):
            self.results[chunk] = self.score(chunk, *self.signals_of(chunk), empty)
            self._drain(workers, wait=False)
        while any(w.alive for w in workers):
            self._drain(workers, wait=True)
        for chunk, scored in enumerate(self.results):
            if scored is None:  # claimed by a worker that failed: score it here
                self.results[chunk] = self.score(chunk, *self.signals_of(chunk), empty)

    def _run_ranked(self, work_read: int, workers: list[_Worker]) -> None:
        held: dict[int, tuple] = {}
        for chunk in _claims(work_read):
            held[chunk] = self.signals_of(chunk)
            self.columns[chunk] = (percentile_columns(self.model, held[chunk][0]), held[chunk][1])
            self._drain(workers, wait=False)
        while any(w.alive and not w.signals_done for w in workers):
            self._drain(workers, wait=True)
        for chunk in range(len(self.bounds)):
            if chunk not in self.columns:  # claimed by a worker that failed
                held[chunk] = self.signals_of(chunk)
                self.columns[chunk] = (percentile_columns(self.model, held[chunk][0]), held[chunk][1])
        populations = self._populations()
        for worker in workers:
            if worker.alive:
                try:
                    _write_frame(worker.control_fd, populations)
                except OSError:  # it died meanwhile; its chunks are scored below
                    worker.alive = False
        for chunk, (signals, segments) in held.items():
            self.results[chunk] = self.score(chunk, signals, segments, populations)
            self._drain(workers, wait=False)
        while any(w.alive for w in workers):
            self._drain(workers, wait=True)
        for chunk, scored in enumerate(self.results):
            if scored is None:
                signals, segments = held.get(chunk) or self.signals_of(chunk)
                self.results[chunk] = self.score(chunk, signals, segments, populations)

    def _populations(self) -> Populations:
        """The serial path's populations: each column concatenated over chunks in account order."""
        names = sorted({m.signal for m in self.model.percentile_measures()})
        order = range(len(self.bounds))
        columns = {name: [raw for chunk in order for raw in self.columns[chunk][0][name]] for name in names}
        segments = [segment for chunk in order for segment in self.columns[chunk][1]]
        return Populations.from_columns(columns, segments)

    def _receive(self, worker: _Worker) -> None:
        """Reader thread: frames from one worker into the inbox (blocked in read, it holds no GIL)."""
        with os.fdopen(worker.results_fd, "rb", buffering=_PIPE_BYTES, closefd=False) as stream:
            while True:
                try:
                    frame = _read_frame(stream)
                except Exception as exc:  # a torn frame from a dying worker: treat as its end
                    frame = None
                    worker.error = f"unreadable frame: {exc!r}"
                self.inbox.put((worker, frame))
                if frame is None:
                    return

    def _drain(self, workers: list[_Worker], wait: bool) -> None:
        while True:
            try:
                worker, frame = self.inbox.get(block=wait)
            except queue.Empty:
                return
            wait = False
            if frame is None:
                worker.alive = False
                continue
            kind, chunk, data = frame
            if kind == "scored":
                self.results[chunk] = data
            elif kind == "columns":
                self.columns[chunk] = data
            elif kind == "signals_done":
                worker.signals_done = True
            elif kind == "error":
                worker.error = data

    def _fork(self, work_read: int, started: list[_Worker]) -> _Worker:
        results_read, results_write = os.pipe()
        control_read, control_write = os.pipe()
        _grow_pipe(results_write)
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the caller's code
            status = 1
            try:
                inherited = [fd for w in started for fd in (w.results_fd, w.control_fd)]
                for fd in (results_read, control_write, *inherited):
                    os.close(fd)
                self._work(work_read, results_write, control_read)
                status = 0
            finally:
                os._exit(status)
        os.close(results_write)
        os.close(control_read)
        return _Worker(pid, results_read, control_write)

    def _reap(self, workers: list[_Worker]) -> None:
        for worker in workers:
            for fd in (worker.results_fd, worker.control_fd):
                try:
                    os.close(fd)
                except OSError:
                    pass
            try:
                _, status = os.waitpid(worker.pid, 0)  # every worker ends by itself once the queue is empty
                worker.status = os.waitstatus_to_exitcode(status)
            except ChildProcessError:
                pass

    # ---------------------------------------------------------------- worker

    def _work(self, work_read: int, out_fd: int, control: int) -> None:
        """The worker's loop. Frames go out through a writer thread, so a parent busy with its own chunks
        never stalls the worker's scoring (a blocked pipe write holds no GIL)."""
        outbox: queue.SimpleQueue = queue.SimpleQueue()
        writer = threading.Thread(target=_pump, args=(outbox, out_fd))
        writer.start()

        def send(kind: str, chunk: int | None, data: Any) -> None:
            outbox.put(encode((kind, chunk, data)))

        try:
            if self.ranked:
                held = {}
                for chunk in _claims(work_read):
                    held[chunk] = signals, segments = self.signals_of(chunk)
                    send("columns", chunk, (percentile_columns(self.model, signals), segments))
                send("signals_done", None, None)
                with os.fdopen(control, "rb", buffering=_PIPE_BYTES, closefd=False) as stream:
                    populations = _read_frame(stream)
                if populations is not None:
                    for chunk, (signals, segments) in held.items():
                        send("scored", chunk, self.score(chunk, signals, segments, populations))
            else:
                empty = Populations()
                for chunk in _claims(work_read):
                    send("scored", chunk, self.score(chunk, *self.signals_of(chunk), empty))
        except BaseException as exc:  # reported; the parent then redoes whatever is missing
            send("error", None, repr(exc))
            raise
        finally:
            outbox.put(None)
            writer.join()


def _pump(outbox: queue.SimpleQueue, fd: int) -> None:
    while (payload := outbox.get()) is not None:
        view = memoryview(_LENGTH.pack(len(payload)) + payload)
        try:
            while view:
                view = view[os.write(fd, view):]
        except OSError:  # the parent stopped listening; nothing left to do
            return
