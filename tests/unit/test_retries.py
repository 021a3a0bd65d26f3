"""This process's clean-ups that met an engine away: each is tried now, and again at every pass
until it is done; nothing else is kept."""

from __future__ import annotations

import logging

from service.domain.retries import Retries
from service.errors import EngineUnavailable


def failing(times: int, done: list[str], name: str):
    left = {"n": times}

    def action() -> None:
        if left["n"]:
            left["n"] -= 1
            raise EngineUnavailable("the engine is away")
        done.append(name)

    return action


def test_what_succeeds_at_once_is_not_kept():
    retries, done = Retries(), []
    retries.attempt("a", "do a", failing(0, done, "a"))
    assert done == ["a"] and "a" not in retries and retries.run() == 0


def test_what_fails_is_tried_at_each_pass_until_it_is_done(caplog):
    retries, done = Retries(), []
    with caplog.at_level(logging.ERROR):
        retries.attempt("a", "do a", failing(2, done, "a"))
    assert "could not do a: the engine is away; trying again later" in caplog.text
    assert "a" in retries
    assert retries.run() == 1 and done == [] and "a" in retries
    assert retries.run() == 1 and done == ["a"] and "a" not in retries
    assert retries.run() == 0


def test_a_pass_tries_each_kept_action_once_and_a_later_one_may_differ():
    retries, done, first = Retries(), [], []
    retries.attempt("a", "do a", failing(1, first, "first"), again=failing(0, done, "again"))
    retries.attempt("b", "do b", failing(5, done, "b"))
    assert retries.run() == 2
    assert first == [] and done == ["again"] and "b" in retries
