"""The TCP/IP server's command line (net/options.py parse_args): what a user types after `tcp`
in init's NET_ARGS, and the one-line errors for what it cannot take."""

from __future__ import annotations

import pytest

from net.options import parse_args


def test_defaults_are_the_tcp_modules_limits() -> None:
    opts = parse_args([], {})
    assert (opts.static, opts.fallback, opts.dhcp_timeout) == (None, None, 10.0)
    assert (opts.rto_max, opts.retries) == (60.0, 8)


def test_retransmission_limits_both_spellings() -> None:
    opts = parse_args(["--rto-max", "2.5", "--retries=4", "--static", "10.0.2.15/24,gw=10.0.2.2"], {})
    assert (opts.rto_max, opts.retries) == (2.5, 4)
    assert opts.static is not None


def test_seed_option_makes_the_stack_reproducible() -> None:
    assert parse_args([], {}).seed is None
    assert parse_args(["--seed", "42"], {}).seed == 42
    assert parse_args(["--seed=0"], {}).seed == 0


@pytest.mark.parametrize("args, message", [
    (["--seed", "x"], "a non-negative integer"),
    (["--rto-max", "soon"], "not a number of seconds"),
    (["--rto-max", "0.01"], "from 0.2"),
    (["--retries", "0"], "a count from 1 to 30"),
    (["--retries", "many"], "a count from 1 to 30"),
    (["--retries"], "--retries needs a value"),
    (["--window", "9"], "unknown option '--window'"),
])
def test_bad_options_are_one_line_errors(args: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_args(args, {})
    assert "\n" not in str(info.value)
