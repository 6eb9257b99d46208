"""What every part of a dispatcher is built with: its settings, database and shared parts.

A frozen record of references, made once by the Dispatcher: no part can swap another
part out from under the rest, and each part's own state stays behind its methods.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.delivery.backoff import Servers
from app.delivery.board import Board
from app.delivery.claims import Claims


@dataclass(frozen=True, slots=True)
class Parts:
    """The settings, database, lease owner and the three parts that hold shared state."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    single: async_sessionmaker[AsyncSession]  # one-statement work (statements.single_statements)
    owner: str  # this dispatcher's lease owner (host:pid:random)
    board: Board
    claims: Claims
    servers: Servers
