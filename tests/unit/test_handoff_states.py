"""Every move of the ticket state machine: the legal ones, and every illegal one refused."""

from __future__ import annotations

import itertools

import pytest

from bot.handoff.states import Action, IllegalTransition, Status, next_status

LEGAL = {
    (Status.OPEN, Action.CLAIM): Status.CLAIMED,
    (Status.CLAIMED, Action.UNCLAIM): Status.OPEN,
    (Status.CLAIMED, Action.TRANSFER): Status.CLAIMED,
    (Status.CLAIMED, Action.TAKEOVER): Status.CLAIMED,
    (Status.CLAIMED, Action.RELEASE): Status.OPEN,
    (Status.CLAIMED, Action.RESOLVE): Status.RESOLVED,
    (Status.OPEN, Action.CANCEL): Status.CANCELLED,
    (Status.CLAIMED, Action.CANCEL): Status.CANCELLED,
    (Status.OPEN, Action.ERASE): Status.ERASED,
    (Status.CLAIMED, Action.ERASE): Status.ERASED,
}


@pytest.mark.parametrize(("move", "target"), LEGAL.items())
def test_legal_moves(move: tuple[Status, Action], target: Status) -> None:
    assert next_status(*move) is target


@pytest.mark.parametrize("move", [m for m in itertools.product(Status, Action) if m not in LEGAL])
def test_every_other_move_is_refused(move: tuple[Status, Action]) -> None:
    with pytest.raises(IllegalTransition, match="cannot be"):
        next_status(*move)
