"""Liveness, without a token and without touching the database (cheap enough to poll)."""

from __future__ import annotations

from fastapi import APIRouter

from services.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def health() -> Health:
    return Health(status="ok")
