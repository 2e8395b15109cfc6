"""The retailer: its products, stores and tills, and its campaign calendar."""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

_CATEGORIES: Final = {
    # category: (nouns, price range in whole units)
    "shoes": (("trail runner", "road shoe", "hiking boot", "sandal", "sneaker"), (35, 160)),
    "apparel": (("rain jacket", "fleece", "base layer", "running tee", "softshell"), (15, 220)),
    "outdoor": (("tent", "sleeping bag", "daypack", "headlamp", "trekking pole"), (12, 450)),
    "kitchen": (("kettle", "knife set", "frying pan", "coffee grinder", "blender"), (18, 260)),
    "home": (("desk lamp", "throw blanket", "storage box", "cushion", "wall clock"), (9, 120)),
    "electronics": (("headphones", "smart speaker", "e-reader", "power bank", "webcam"), (19, 380)),
    "toys": (("building set", "puzzle", "board game", "plush bear", "kite"), (8, 90)),
    "garden": (("hose reel", "pruner", "planter", "garden chair", "bird feeder"), (10, 300)),
}
_ADJECTIVES: Final = ("classic", "light", "pro", "urban", "compact", "summit", "eco", "nordic")
_BRANDS: Final = ("Northpeak", "Larkfield", "Oakshore", "Brightwell", "Tidecraft", "Stonemoor")
_SEARCH_EXTRAS: Final = ("", " sale", " waterproof", " for kids", " best", " review", " black")


@dataclass(frozen=True, slots=True)
class Product:
    """One product of the catalog."""

    product_id: str
    name: str
    category: str
    brand: str
    price: Decimal

    def as_property(self, currency: str) -> dict[str, Any]:
        """The product as event properties carry it."""
        return {
            "product_id": self.product_id,
            "name": self.name,
            "category": self.category,
            "brand": self.brand,
            "price": {"amount": str(self.price), "currency": currency},
        }

    def search_query(self, rng: random.Random) -> str:
        """What someone looking for it types into the site search."""
        noun = self.name.split(" ", 1)[1]
        return f"{noun}{rng.choice(_SEARCH_EXTRAS)}"


@dataclass(frozen=True, slots=True)
class Till:
    """A till; batch tills upload the day's events at night."""

    till_id: str
    batch: bool
    upload_offset: int
    """Seconds after midnight at which a batch till uploads the previous day."""


@dataclass(frozen=True, slots=True)
class Store:
    """A store and its tills."""

    store_id: str
    tills: tuple[Till, ...]


@dataclass(frozen=True, slots=True)
class Catalog:
    """Products by category, stores, and the ids the retailer hands out."""

    products: tuple[Product, ...]
    by_category: dict[str, tuple[Product, ...]]
    stores: tuple[Store, ...]

    @property
    def categories(self) -> tuple[str, ...]:
        """Category names in a fixed order."""
        return tuple(self.by_category)


def make_catalog(rng: random.Random, customers: int, batch_till_share: float) -> Catalog:
    """Products (about 40 per category) and one store per 2,000 customers (at least 3)."""
    products: list[Product] = []
    for category, (nouns, (low, high)) in _CATEGORIES.items():
        for number in range(40):
            noun = nouns[number % len(nouns)]
            adjective = _ADJECTIVES[(number // len(nouns)) % len(_ADJECTIVES)]
            cents = rng.choice((0, 49, 90, 95, 99))
            price = Decimal(rng.randint(low, high)) + Decimal(cents) / 100
            products.append(
                Product(
                    f"P-{len(products) + 1000:05d}",
                    f"{adjective} {noun}",
                    category,
                    rng.choice(_BRANDS),
                    price.quantize(Decimal("0.01")),
                )
            )
    by_category = {c: tuple(p for p in products if p.category == c) for c in _CATEGORIES}
    stores = []
    for number in range(max(3, min(customers // 2000, 400))):
        tills = tuple(
            Till(
                f"T-{t + 1:02d}",
                rng.random() < batch_till_share,
                rng.randint(3600, 4 * 3600),
            )
            for t in range(rng.randint(2, 6))
        )
        stores.append(Store(f"S-{number + 1:03d}", tills))
    return Catalog(tuple(products), by_category, tuple(stores))
