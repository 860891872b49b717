import logging
from types import SimpleNamespace

from harmonize_bids.progress import Progress, WorkflowProgress, format_duration


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_format_duration():
    assert format_duration(42.4) == "42 s"
    assert format_duration(185) == "3 min 05 s"
    assert format_duration(7620) == "2 h 07 min"


def test_progress_estimates_the_time_left_from_the_mean_so_far(caplog):
    clock = Clock()
    progress = Progress(4, logging.getLogger("t"), clock=clock)
    caplog.set_level(logging.INFO)
    clock.now = 30
    progress.done("sub-01", "measured")
    clock.now = 50
    progress.done("sub-02", "measured")
    assert progress.estimate_left() == 50
    clock.now = 75
    progress.done("sub-03", "measured")
    progress.done("sub-04", "measured")
    lines = caplog.messages
    assert lines[0] == "[1/4] sub-01 measured (30 s elapsed; about 1 min 30 s left)"
    assert lines[1] == "[2/4] sub-02 measured (50 s elapsed; about 50 s left)"
    assert lines[3] == "[4/4] sub-04 measured (1 min 15 s elapsed; all done)"


def _node(fullname):
    return SimpleNamespace(fullname=fullname)


def test_workflow_progress_logs_an_image_when_its_last_node_ends_or_one_fails(caplog):
    names = ["a_wf.conform", "a_wf.sink", "b_wf.conform", "b_wf.sink", "citation"]
    callback = WorkflowProgress(
        names, {"a_wf": "sub-01_T1w", "b_wf": "sub-02_T1w"}, logging.getLogger("t")
    )
    caplog.set_level(logging.INFO)
    callback(_node("top.a_wf.conform"), "start")
    callback(_node("top.a_wf.conform"), "end")
    assert caplog.messages == []
    callback(_node("top.b_wf.conform"), "exception")
    callback(_node("top.a_wf.sink"), "end")
    callback(_node("top.citation"), "end")
    assert [m.split(" (")[0] for m in caplog.messages] == [
        "[1/2] sub-02_T1w failed",
        "[2/2] sub-01_T1w finished",
    ]
