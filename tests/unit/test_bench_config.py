"""Parsing and validating what to run: bad input is one UsageError line."""

import argparse

import pytest

from giltrace.cli import bench
from giltrace.errors import UsageError
from giltrace.bench.config import BenchConfig, parse_int_list, parse_name_list, validate


def parse(*argv):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return bench.config_from_args(parser.parse_args(list(argv)))


def test_defaults_follow_the_issue():
    config = parse()
    assert config.workloads == ["cpu", "io", "mix"]
    assert config.cores == [1, 2, 4, 8] and config.ns == [1, 2, 4]
    assert config.modes == ["serial", "thread", "procs"] and config.repeat == 3
    assert config.pythons == [] and config.trace is False


def test_lists_and_repeated_python():
    config = parse("--workloads", "io-sync,latency", "--cores", "2,1,2", "--n", "4", "--python", "a", "--python", "b")
    assert config.workloads == ["io-sync", "latency"]
    assert config.cores == [2, 1]  # duplicates dropped, order kept
    assert config.grid_workloads == ["io-sync"] and config.latency_workloads == ["latency"]
    assert config.pythons == ["a", "b"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--cores", "0"], "--cores: 0 is too small (at least 1)"),
        (["--cores", "1,x"], "--cores: 'x' is not a whole number"),
        (["--n", "-1"], "--n: -1 is too small (at least 1)"),
        (["--workloads", "cpu,disk"], "--workloads: unknown 'disk'"),
        (["--modes", "fibers"], "--modes: unknown 'fibers'"),
        (["--competitors", "-1"], "--competitors: -1 is too small (at least 0)"),
        (["--repeat", "0"], "--repeat must be at least 1"),
        (["--load", "0"], "--load must be at least 1"),
        (["--duration", "0"], "--duration must be positive"),
    ],
)
def test_bad_input_is_one_clear_line(argv, message):
    with pytest.raises(UsageError) as info:
        parse(*argv)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_parse_helpers():
    assert parse_int_list("1, 2,4", "--n", 1) == [1, 2, 4]
    assert parse_name_list("thread", "--modes", ["serial", "thread"]) == ["thread"]


def test_validate_rejects_empty_axes_of_the_workloads_asked_for():
    with pytest.raises(UsageError, match="--n needs at least one value"):
        validate(BenchConfig(ns=[]))
    validate(BenchConfig(workloads=["latency"], ns=[]))  # latency has no N axis
    with pytest.raises(UsageError, match="--start-method"):
        validate(BenchConfig(start_method="vfork"))


def test_what_is_said_up_front():
    from giltrace.bench.interpreters import Interpreter
    from giltrace.bench.runner import upfront_messages

    py27 = Interpreter(
        path="/py27", version="2.7.18", implementation="CPython", gil_enabled=True, switching="check interval 100 ticks", label="2.7.18"
    )
    quiet = upfront_messages(BenchConfig(workloads=["cpu"], cores=[1, 2]), [py27], [0, 1])
    assert quiet == []
    py38 = Interpreter(
        path="/py38", version="3.8.18", implementation="CPython", gil_enabled=True, switching="switch interval 5 ms", label="3.8.18"
    )
    loud = upfront_messages(BenchConfig(workloads=["io", "latency"], cores=[1, 4, 8], trace=True), [py27, py38], [0, 1])
    assert loud[0] == ("cores 4, 8: unavailable, this process may use only 2 CPUs (0-1); those rows are marked in the tables and not run")
    assert loud[1].startswith("python 3.8.18: cannot be traced (tracing needs CPython 2.7 or 3.9-3.13")
    assert "~8M GIL events per io cell" in loud[2] and "trace latency-sync" in loud[3]
    # 2.7 is traced (the old GIL), and its counters retake the GIL every ~34 counts
    counting = upfront_messages(BenchConfig(workloads=["cpu"], cores=[1, 2], trace=True), [py27], [0, 1])
    assert counting == [
        "--trace with python 2.7.18 records ~6M GIL events per counting cell (the old GIL is "
        "retaken every ~34 counts); a smaller --load keeps traces manageable"
    ]
    assert upfront_messages(BenchConfig(workloads=["cpu"], cores=[1, 2], trace=True, load=10**7), [py27], [0, 1]) == []
