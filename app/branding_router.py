"""The branding API (`/api/v1/branding`): what the console's settings page reads and saves."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app import branding
from app.deps import AdminDep, SessionDep, SettingsDep

router = APIRouter(prefix="/api/v1/branding", tags=["settings"], dependencies=[AdminDep])


class BrandingIn(BaseModel):
    name: str = Field(max_length=200)
    address: str = Field("", max_length=500)
    accent: str = Field(branding.DEFAULT_ACCENT, max_length=7)
    logo_media_id: int | None = Field(None, ge=1, le=2**63 - 1)


class BrandingOut(BrandingIn):
    logo_url: str


def _out(value: branding.Branding) -> BrandingOut:
    return BrandingOut(
        name=value.name,
        address=value.address,
        accent=value.accent,
        logo_media_id=value.logo_media_id,
        logo_url=value.logo_url,
    )


@router.get("", response_model=BrandingOut)
async def get_branding(session: SessionDep, settings: SettingsDep) -> BrandingOut:
    """The organisation's branding: stored values over the environment's defaults."""
    return _out(await branding.load(session=session, settings=settings))


@router.put("", response_model=BrandingOut)
async def put_branding(data: BrandingIn, session: SessionDep, settings: SettingsDep) -> BrandingOut:
    """Set the name, postal address, accent colour and logo used by emails and public pages."""
    saved = await branding.save(session=session, settings=settings, **data.model_dump())
    return _out(saved)
