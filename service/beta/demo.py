"""Demo fleet for ``make run``: ~300 restaurants (S0001 …), devices, a 5 % beta cohort with
its history, and two freezes. Runs before the adoption demo, which uses these stores."""

from __future__ import annotations

import random
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session

from beta import store as beta_store
from service.beta import services
from service.models import utcnow

ACTOR = "system:demo"
STORE_COUNT = 300
REGIONS = {
    "Tokyo": (
        "Asia/Tokyo",
        ["Shibuya", "Shinjuku", "Ginza", "Ikebukuro", "Ueno", "Asakusa", "Nakameguro", "Kichijoji"],
    ),
    "Osaka": ("Asia/Tokyo", ["Namba", "Umeda", "Tenma", "Shinsaibashi", "Tennoji"]),
    "Fukuoka": ("Asia/Tokyo", ["Tenjin", "Hakata", "Nakasu", "Daimyo"]),
    "Sapporo": ("Asia/Tokyo", ["Susukino", "Odori", "Maruyama"]),
    "Nagoya": ("Asia/Tokyo", ["Sakae", "Meieki", "Osu", "Kanayama"]),
    "Los Angeles": ("America/Los_Angeles", ["Little Tokyo", "Sawtelle", "Torrance"]),
}
REGION_WEIGHTS = {"Tokyo": 40, "Osaka": 20, "Fukuoka": 12, "Sapporo": 9, "Nagoya": 14}
PREFIXES = [
    "Sakura", "Umi", "Hana", "Kaze", "Tsuki", "Yama", "Kawa", "Matsu", "Take", "Ume", "Fuji",
    "Hoshi", "Sora", "Mori", "Kiku", "Nagomi", "Komorebi", "Irodori",
]  # fmt: skip
KINDS_OF_PLACE = [
    "Ramen", "Sushi", "Izakaya", "Soba", "Udon", "Yakitori", "Tonkatsu", "Tempura", "Donburi",
    "Curry House", "Okonomiyaki", "Gyoza Bar", "Kissaten", "Yakiniku",
]  # fmt: skip
FRANCHISES = [
    "franchise:sakura-dining",
    "franchise:umi-group",
    "franchise:kaze-foods",
    "franchise:independent",
]
HARDWARE = ["hw:gen2", "hw:gen3", "hw:gen3", "hw:tablet-x"]
KIND_WEIGHTS = {"pos": 5, "handy": 4, "kds": 2, "kiosk": 1}


def _next_new_years_eve(now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    local = now.astimezone(zone)
    year = local.year if (local.month, local.day) < (12, 31) else local.year + 1
    starts = datetime.combine(datetime(year, 12, 31).date(), time(15, 0), tzinfo=zone)
    return starts, starts + timedelta(hours=12)


def seed(session: Session) -> list[str]:
    if beta_store.get_store(session=session, external_id="S0001") is not None:
        return ["fleet: demo stores already present"]
    rng = random.Random(20261128)
    now = utcnow()
    regions = list(REGION_WEIGHTS) * 1
    weights = [REGION_WEIGHTS[r] for r in regions]
    devices = 0
    created = []
    for n in range(1, STORE_COUNT + 1):
        region = "Los Angeles" if n % 60 == 0 else rng.choices(regions, weights)[0]
        timezone, areas = REGIONS[region]
        name = f"{rng.choice(PREFIXES)} {rng.choice(KINDS_OF_PLACE)} {rng.choice(areas)}"
        tags = [rng.choice(FRANCHISES), rng.choice(HARDWARE)]
        if rng.random() < 0.15:
            tags.append("late-night")
        window = ("03:00", "06:00") if "late-night" in tags else ("02:00", "05:00")
        store = beta_store.create_store(
            session=session,
            external_id=f"S{n:04d}",
            name=name,
            region=region,
            timezone=timezone,
            tags=tags,
            update_window_start=window[0],
            update_window_end=window[1],
            actor=ACTOR,
            now=now,
        ).store
        created.append(store)
        kinds = rng.choices(list(KIND_WEIGHTS), list(KIND_WEIGHTS.values()), k=rng.randint(1, 6))
        for i, kind in enumerate(sorted(kinds), 1):
            beta_store.create_device(
                session=session,
                store=store,
                device_id=f"{store.external_id}-{kind}-{i}",
                kind=kind,
                label=f"{kind} {i}",
                actor=ACTOR,
                now=now,
            )
            devices += 1
    by_id = {s.external_id: s for s in created}
    for external_id, reason in [
        ("S0007", "owner asked to try new releases first"),
        ("S0042", "flagship store with on-site IT staff"),
        ("S0120", "franchise HQ test kitchen"),
    ]:
        services.change_cohort(
            session, by_id[external_id], action="enrol", reason=reason, actor=ACTOR
        )
    services.change_cohort(
        session,
        by_id["S0013"],
        action="remove",
        reason="owner asked to stay off beta during the lunch rush season",
        actor=ACTOR,
    )
    plan = services.apply_fill(
        session,
        services.fill_request(target_count=None, target_percent=5),
        reason="spring beta cohort: 5 % of stores",
        actor=ACTOR,
        digest=None,
    )
    tokyo = ZoneInfo("Asia/Tokyo")
    starts, ends = _next_new_years_eve(now, tokyo)
    services.freeze(
        session, by_id["S0021"], starts_at=starts, ends_at=ends,
        reason="New Year's Eve rush", actor=ACTOR,
    )  # fmt: skip
    services.freeze(
        session, by_id["S0033"], starts_at=now - timedelta(hours=2),
        ends_at=now + timedelta(days=3), reason="grand reopening weekend", actor=ACTOR,
    )  # fmt: skip
    return [
        f"fleet: {len(created)} stores (S0001–S{len(created):04d}), {devices} devices, "
        f"beta cohort of {len(plan.cohort)}, 2 freezes"
    ]
