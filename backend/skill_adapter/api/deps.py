"""Dependencies: the settings, a database session and the enqueue function, all from ``app.state``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from skill_adapter.core.config import Settings
from skill_adapter.core.db import get_engine
from skill_adapter.service import Enqueue


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_session(request: Request) -> Iterator[Session]:
    factory = sessionmaker(get_engine(request.app.state.settings), expire_on_commit=False)
    with factory() as session:
        yield session


def get_enqueue(request: Request) -> Enqueue:
    return request.app.state.enqueue  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
EnqueueDep = Annotated[Enqueue, Depends(get_enqueue)]
