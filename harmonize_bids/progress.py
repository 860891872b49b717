"""Progress of long runs: items done, time elapsed and an estimate of the time left."""

from __future__ import annotations

import logging
import time


def format_duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    """Logs one line per finished item: ``[k/N] NAME WHAT (elapsed; about T left)``.

    The time left assumes the remaining items take as long as the finished ones did on
    average.
    """

    def __init__(self, total: int, logger: logging.Logger, *, clock=time.monotonic):
        self.total = total
        self.count = 0
        self.logger = logger
        self.clock = clock
        self.started = clock()

    def estimate_left(self) -> float:
        elapsed = self.clock() - self.started
        return elapsed / self.count * (self.total - self.count) if self.count else float("nan")

    def done(self, name: str, what: str = "done") -> None:
        self.count += 1
        elapsed = self.clock() - self.started
        left = self.total - self.count
        tail = f"about {format_duration(self.estimate_left())} left" if left else "all done"
        self.logger.info(
            "[%d/%d] %s %s (%s elapsed; %s)",
            self.count,
            self.total,
            name,
            what,
            format_duration(elapsed),
            tail,
        )


class WorkflowProgress:
    """A nipype ``status_callback`` that logs a :class:`Progress` line per sub-workflow
    (one per image) when its last node ends, or when one of its nodes fails.

    ``node_names`` are the hierarchical names of the nodes nipype runs;
    ``groups`` maps the names of the sub-workflows to follow to what the log calls them.
    """

    def __init__(self, node_names: list[str], groups: dict[str, str], logger: logging.Logger):
        self.labels = dict(groups)
        self.pending = {
            group: sum(group in name.split(".") for name in node_names) for group in groups
        }
        self.progress = Progress(len(groups), logger)

    def __call__(self, node, status: str) -> None:
        if status not in ("end", "exception"):
            return
        parts = node.fullname.split(".")
        for group, pending in self.pending.items():
            if group not in parts or pending <= 0:
                continue
            if status == "exception":
                self.pending[group] = 0
                self.progress.done(self.labels[group], "failed")
            else:
                self.pending[group] = pending - 1
                if pending == 1:
                    self.progress.done(self.labels[group], "finished")
