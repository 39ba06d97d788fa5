"""Minimal stand-ins for Faust events: only the fields the ledgers read."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Msg:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Ev:
    message: Msg
    name: str = field(default="")
