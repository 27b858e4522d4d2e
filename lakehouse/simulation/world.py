"""The marketplace simulation, one day at a time.

Every customer carries hidden experience scores (late deliveries, returns, payment failures,
campaign fatigue, price shocks on their favourite category). They raise the daily hazard of
disengaging: a disengaged customer buys less for a few weeks and then stops buying for good.
Each domain only sees its own traces of that story, which is why federated features predict
churn better than sales features alone. Randomness is drawn per simulated day from
SeedSequence([seed, day]), so the same seed yields the same world however it is chunked.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from lakehouse.simulation import catalog as cat
from lakehouse.simulation.dirty import inject
from lakehouse.simulation.scales import Scale
from lakehouse.simulation.sources import SPECS

DAY_US = 86_400_000_000


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _ts(start_us: int, day: np.ndarray | int, seconds: np.ndarray | float) -> np.ndarray:
    """Microsecond timestamps: start of the simulation + day + seconds into that day."""
    return (
        start_us
        + np.asarray(day, dtype=np.int64) * DAY_US
        + (np.asarray(seconds) * 1_000_000).astype(np.int64)
    )


class World:
    """All hidden state of the marketplace plus the queue of events not yet delivered."""

    def __init__(self, scale: Scale, seed: int, start: date, dirty_share: float) -> None:
        self.scale = scale
        self.seed = seed
        self.start = start
        self.dirty_share = dirty_share
        self.day = 0  # next simulated day to run, counted from start
        self.ids: dict[str, int] = defaultdict(int)
        self.c: dict[str, np.ndarray] = {}
        self.p: dict[str, np.ndarray] = {}
        self.g: dict[str, np.ndarray] = {}
        self.pending: dict[str, list[pl.DataFrame]] = defaultdict(list)
        self.start_us = (start - date(1970, 1, 1)).days * DAY_US

    # ------------------------------------------------------------------ creation
    def _rng(self, *stream: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, *stream]))

    def _next_ids(self, entity: str, n: int) -> np.ndarray:
        first = self.ids[entity] + 1
        self.ids[entity] += n
        return np.arange(first, first + n, dtype=np.int64)

    def populate(self) -> None:
        """Create the products, warehouses and the customers that exist before day 0."""
        rng = self._rng(0)
        n_p = self.scale.products
        pcat = rng.choice(len(cat.CATEGORY_NAMES), size=n_p, p=cat.CATEGORY_WEIGHTS)
        order = np.argsort(pcat, kind="stable")
        pcat = pcat[order]
        self.p = {
            "category": pcat.astype(np.int8),
            "sub": rng.integers(0, 3, size=n_p).astype(np.int8),
            "brand": rng.integers(0, len(cat.BRANDS), size=n_p).astype(np.int8),
            "price": np.round(cat.CATEGORY_PRICE_USD[pcat] * rng.lognormal(0, 0.45, n_p), 2),
            "launch_day": -rng.integers(30, 1500, size=n_p).astype(np.int32),
        }
        self.g = {
            "cat_start": np.searchsorted(pcat, np.arange(len(cat.CATEGORY_NAMES))),
            "cat_count": np.bincount(pcat, minlength=len(cat.CATEGORY_NAMES)),
            "shock": np.zeros(len(cat.CATEGORY_NAMES)),
            "disrupted_until": np.full(len(cat.REGIONS), -1, dtype=np.int32),
            "stock": rng.integers(50, 400, size=(len(cat.REGIONS) * 2, n_p)).astype(np.int32),
            "campaign_id": np.zeros(0, dtype=np.int64),
            "campaign_end": np.zeros(0, dtype=np.int32),
        }
        self._add_customers(rng, self.scale.customers, -rng.integers(1, 1000, self.scale.customers))

    def _add_customers(self, rng: np.random.Generator, n: int, signup_day: np.ndarray) -> None:
        region = rng.choice(len(cat.REGIONS), size=n, p=cat.REGION_WEIGHTS)
        latam_ccy = np.where(rng.random(n) < 0.6, 2, 3)
        currency = np.choose(
            region, [latam_ccy, np.zeros(n, int), np.ones(n, int), np.zeros(n, int)]
        )
        u = rng.random((n, 1))
        method = (u > np.cumsum(cat.METHOD_WEIGHTS[region], axis=1)).sum(axis=1)
        heavy_mail = rng.random(n) < 0.18
        new = {
            "region": region.astype(np.int8),
            "currency": currency.astype(np.int8),
            "base_rate": (0.11 * rng.lognormal(0, 0.45, n)).astype(np.float32),
            "method": np.minimum(method, len(cat.PAYMENT_METHODS) - 1).astype(np.int8),
            "fail_prop": np.clip(
                rng.beta(1.0, 18.0, n) + 0.15 * (rng.random(n) < 0.08), 0, 0.8
            ).astype(np.float32),
            "email_rate": np.where(
                heavy_mail, rng.uniform(6, 12, n), rng.uniform(0.5, 3, n)
            ).astype(np.float32),
            "fav_cat": rng.choice(len(cat.CATEGORY_NAMES), size=n, p=cat.CATEGORY_WEIGHTS).astype(
                np.int8
            ),
            "z": rng.normal(0, 1, n).astype(np.float32),
            "fraudster": rng.random(n) < 0.01,
            "signup_day": np.asarray(signup_day, dtype=np.int32),
            "late": np.zeros(n, np.float32),
            "ret": np.zeros(n, np.float32),
            "fail": np.zeros(n, np.float32),
            "email": np.zeros(n, np.float32),
            "risk_day": np.full(n, -1, np.int32),
            "churn_day": np.full(n, -1, np.int32),
            "churned": np.zeros(n, bool),
            "click_day": np.full(n, -10_000, np.int32),
            "click_campaign": np.zeros(n, np.int64),
        }
        self.c = {k: np.concatenate([self.c[k], v]) if self.c else v for k, v in new.items()}
        ids = self._next_ids("customer", n)
        first_names = cat.FIRST_NAMES[rng.integers(0, len(cat.FIRST_NAMES), n)]
        last_names = cat.LAST_NAMES[rng.integers(0, len(cat.LAST_NAMES), n)]
        signup_ts = _ts(self.start_us, new["signup_day"], rng.uniform(0, 86_400, n))
        frame = pl.DataFrame(
            {
                "customer_id": ids,
                "name": np.char.add(np.char.add(first_names, " "), last_names),
                "email": [
                    f"{f.lower()}.{s.lower()}{i}@example.com"
                    for f, s, i in zip(first_names, last_names, ids, strict=True)
                ],
                "phone": [
                    f"+{1 + r}-555-{i % 10_000_000:07d}" for r, i in zip(region, ids, strict=True)
                ],
                "region": cat.REGIONS[region],
                "signup_ts": signup_ts,
            }
        ).with_columns(pl.col("signup_ts").cast(pl.Datetime("us", "UTC")))
        self._emit("customers", frame, rng)

    # ------------------------------------------------------------------ event plumbing
    def _emit(
        self,
        table: str,
        frame: pl.DataFrame,
        rng: np.random.Generator,
        release: np.ndarray | None = None,
    ) -> None:
        """Queue rows for delivery `release` days from today, dirtied like a real source."""
        if frame.height == 0:
            return
        offset = np.zeros(frame.height, np.int32) if release is None else release
        self.pending[table].append(
            inject(frame, SPECS[table], self.dirty_share, rng, self.day + offset)
        )

    def _experience(self, kind: str, customers: np.ndarray, days: np.ndarray) -> None:
        self.pending["_experience"].append(
            pl.DataFrame(
                {
                    "kind": kind,
                    "cust": customers.astype(np.int64),
                    "_release_day": days.astype(np.int32),
                }
            )
        )

    def _release(self, table: str) -> pl.DataFrame | None:
        """Pop the queued rows of one table whose delivery day has come."""
        frames = self.pending.get(table)
        if not frames:
            return None
        allrows = pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0]
        due = allrows["_release_day"] <= self.day
        later = allrows.filter(~due)
        self.pending[table] = [later] if later.height else []
        now = allrows.filter(due)
        return now if now.height else None

    # ------------------------------------------------------------------ one day
    def step(self) -> dict[str, pl.DataFrame]:
        """Simulate one day and return the rows that source systems deliver for it."""
        d = self.day
        rng = self._rng(1, d)
        weekday = (self.start + timedelta(days=d)).weekday()
        if d == 0:
            self._emit("products", self._product_frame(), rng)
        # new customers sign up
        n_new = rng.poisson(0.2 * self.scale.customers / self.scale.days)
        if n_new:
            self._add_customers(rng, n_new, np.full(n_new, d))
        c, g = self.c, self.g
        self._prices(rng, d)
        self._campaigns(rng, d)
        # experiences delivered today, then decay
        exp = self._release("_experience")
        for name, half in (("late", 20), ("ret", 25), ("fail", 20), ("email", 10)):
            c[name] *= np.float32(np.exp(-1 / half))
        g["shock"] *= np.exp(-1 / 30)
        if exp is not None:
            for kind in ("late", "ret"):
                idx = exp.filter(pl.col("kind") == kind)["cust"].to_numpy()
                np.add.at(c[kind], idx, 1.0)
        # disengagement: at-risk customers churn on their day; others may become at risk
        c["churned"] |= (c["churn_day"] >= 0) & (c["churn_day"] <= d)
        live = (c["signup_day"] <= d) & ~c["churned"]
        calm = live & (c["risk_day"] < 0)
        logit = (
            -8.0
            + 1.1 * c["late"]
            + 1.0 * c["ret"]
            + 0.9 * c["fail"]
            + 0.25 * np.maximum(c["email"] - 6.0, 0)
            + 9.0 * g["shock"][c["fav_cat"]]
            + 0.5 * c["z"]
        )
        trigger = calm & (rng.random(len(logit)) < _sigmoid(logit))
        c["risk_day"][trigger] = d
        c["churn_day"][trigger] = d + rng.integers(6, 28, int(trigger.sum()))
        # regional delivery disruptions
        start_disruption = (g["disrupted_until"] < d) & (rng.random(len(cat.REGIONS)) < 1 / 45)
        g["disrupted_until"][start_disruption] = d + rng.integers(
            7, 22, int(start_disruption.sum())
        )
        self._orders(rng, d, live, weekday)
        self._marketing(rng, d, live)
        if weekday == 0:
            self._stock(rng, d)
        released = {t: self._release(t) for t in SPECS}
        self.day += 1
        return {t: f for t, f in released.items() if f is not None}

    def _product_frame(self) -> pl.DataFrame:
        p = self.p
        n = len(p["price"])
        subs = np.array(
            [
                cat.CATEGORIES[str(name)] + ("",) * (3 - len(cat.CATEGORIES[str(name)]))
                for name in cat.CATEGORY_NAMES
            ]
        )
        sub = np.minimum(
            p["sub"],
            np.array([len(cat.CATEGORIES[str(x)]) for x in cat.CATEGORY_NAMES])[p["category"]] - 1,
        )
        ids = self._next_ids("product", n)
        return pl.DataFrame(
            {
                "product_id": ids,
                "name": [
                    f"{cat.BRANDS[b]} {cat.CATEGORY_NAMES[k]} {i}"
                    for b, k, i in zip(p["brand"], p["category"], ids, strict=True)
                ],
                "category": cat.CATEGORY_NAMES[p["category"]],
                "subcategory": subs[p["category"], sub],
                "brand": cat.BRANDS[p["brand"]],
                "launch_date": pl.Series(self.start_us // DAY_US + p["launch_day"]).cast(pl.Date),
                "list_price_usd": p["price"].copy(),  # prices change in place later
            }
        )

    def _prices(self, rng: np.random.Generator, d: int) -> None:
        p, g = self.p, self.g
        n = len(p["price"])
        factor = np.ones(n)
        drift = rng.random(n) < 0.008
        factor[drift] = rng.uniform(0.9, 1.08, int(drift.sum()))
        shocked = rng.random(len(cat.CATEGORY_NAMES)) < 1 / 50
        for k in np.flatnonzero(shocked):
            bump = rng.uniform(1.08, 1.22)
            g["shock"][k] += np.log(bump)
            sl = slice(g["cat_start"][k], g["cat_start"][k] + g["cat_count"][k])
            factor[sl] *= bump
        changed = np.flatnonzero(factor != 1.0)
        if changed.size == 0:
            return
        p["price"][changed] = np.round(p["price"][changed] * factor[changed], 2)
        frame = pl.DataFrame(
            {
                "change_id": self._next_ids("price_change", changed.size),
                "product_id": changed.astype(np.int64) + 1,
                "effective_ts": _ts(self.start_us, d, rng.uniform(0, 3600, changed.size)),
                "price_usd": p["price"][changed],
                "reason": np.where(
                    shocked[p["category"][changed]] & (factor[changed] > 1.075),
                    "category_repricing",
                    "adjustment",
                ),
            }
        ).with_columns(pl.col("effective_ts").cast(pl.Datetime("us", "UTC")))
        self._emit("price_changes", frame, rng)

    def _campaigns(self, rng: np.random.Generator, d: int) -> None:
        g = self.g
        n_new = 3 if d == 0 else int(d % 7 == 0)
        if not n_new:
            return
        ids = self._next_ids("campaign", n_new)
        length = rng.integers(14, 29, n_new)
        category = rng.integers(0, len(cat.CATEGORY_NAMES), n_new)
        g["campaign_id"] = np.concatenate([g["campaign_id"], ids])
        g["campaign_end"] = np.concatenate([g["campaign_end"], d + length]).astype(np.int32)
        day0 = self.start_us // DAY_US
        frame = pl.DataFrame(
            {
                "campaign_id": ids,
                "name": [
                    f"{cat.CATEGORY_NAMES[k]}-push-{i}" for k, i in zip(category, ids, strict=True)
                ],
                "channel": cat.CHANNELS[rng.integers(0, len(cat.CHANNELS), n_new)],
                "target_category": cat.CATEGORY_NAMES[category],
                "start_date": pl.Series(np.full(n_new, day0 + d)).cast(pl.Date),
                "end_date": pl.Series(day0 + d + length).cast(pl.Date),
                "budget_usd": np.round(rng.uniform(2_000, 20_000, n_new), 2),
            }
        )
        self._emit("campaigns", frame, rng)

    def _orders(self, rng: np.random.Generator, d: int, live: np.ndarray, weekday: int) -> None:
        c, p, g = self.c, self.p, self.g
        rate = (
            c["base_rate"] * np.where(c["risk_day"] >= 0, 0.35, 1.0) * (1.15 if weekday >= 5 else 1)
        )
        n_orders = np.where(live, np.minimum(rng.poisson(rate), 3), 0)
        cust = np.repeat(np.arange(len(rate)), n_orders)
        n = cust.size
        if n == 0:
            return
        order_id = self._next_ids("order", n)
        secs = rng.uniform(0, 86_400, n)
        order_ts = _ts(self.start_us, d, secs)
        region = c["region"][cust]
        ccy = c["currency"][cust]
        method = np.where(
            rng.random(n) < 0.85,
            c["method"][cust],
            (rng.random((n, 1)) > np.cumsum(cat.METHOD_WEIGHTS[region], axis=1)).sum(axis=1),
        )
        method = np.minimum(method, len(cat.PAYMENT_METHODS) - 1)
        basket = np.minimum(1 + rng.poisson(1.2, n), 8)
        # lines
        line_order = np.repeat(np.arange(n), basket)
        m = line_order.size
        fav = c["fav_cat"][cust][line_order]
        line_cat = np.where(
            rng.random(m) < 0.6,
            fav,
            rng.choice(len(cat.CATEGORY_NAMES), size=m, p=cat.CATEGORY_WEIGHTS),
        )
        prod = g["cat_start"][line_cat] + (rng.random(m) * g["cat_count"][line_cat]).astype(
            np.int64
        )
        prod = np.minimum(prod, len(p["price"]) - 1)
        qty = 1 + rng.poisson(0.2, m)
        unit = np.round(p["price"][prod] * cat.FX_PER_USD[ccy[line_order]], 2)
        line_amount = np.round(unit * qty, 2)
        amount = np.round(np.bincount(line_order, weights=line_amount, minlength=n), 2)
        # payments: a first attempt may fail; some customers retry
        fail1 = rng.random(n) < c["fail_prop"][cust]
        retry = fail1 & (rng.random(n) < 0.6)
        fail2 = retry & (rng.random(n) < 0.3)
        paid = ~fail1 | (retry & ~fail2)
        np.add.at(c["fail"], cust[fail1], 1.0)
        np.add.at(c["fail"], cust[fail2], 1.0)
        status = np.where(paid, "completed", "cancelled")
        ts = pl.Datetime("us", "UTC")
        self._emit(
            "orders",
            pl.DataFrame(
                {
                    "order_id": order_id,
                    "customer_id": cust.astype(np.int64) + 1,
                    "order_ts": order_ts,
                    "region": cat.REGIONS[region],
                    "currency": cat.CURRENCIES[ccy],
                    "payment_method": cat.PAYMENT_METHODS[method],
                    "basket_size": basket.astype(np.int32),
                    "amount": amount,
                    "status": status,
                }
            ).with_columns(pl.col("order_ts").cast(ts)),
            rng,
        )
        self._emit(
            "order_lines",
            pl.DataFrame(
                {
                    "line_id": self._next_ids("line", m),
                    "order_id": order_id[line_order],
                    "product_id": prod.astype(np.int64) + 1,
                    "quantity": qty.astype(np.int32),
                    "unit_price": unit,
                    "currency": cat.CURRENCIES[ccy[line_order]],
                    "amount": line_amount,
                }
            ),
            rng,
        )
        # payment attempts
        attempts = np.concatenate([np.arange(n), np.flatnonzero(retry)])
        attempt_no = np.concatenate([np.ones(n, np.int8), np.full(int(retry.sum()), 2, np.int8)])
        ok = np.concatenate([~fail1, ~fail2[retry]])
        risk = np.clip(
            rng.beta(1.2, 14, attempts.size) + 0.45 * c["fraudster"][cust[attempts]], 0, 1
        )
        pay_ids = self._next_ids("payment", attempts.size)
        pay_ts = order_ts[attempts] + (attempt_no.astype(np.int64) * 90_000_000)
        self._emit(
            "payments",
            pl.DataFrame(
                {
                    "payment_id": pay_ids,
                    "order_id": order_id[attempts],
                    "customer_id": cust[attempts].astype(np.int64) + 1,
                    "attempt": attempt_no,
                    "amount": amount[attempts],
                    "currency": cat.CURRENCIES[ccy[attempts]],
                    "method": cat.PAYMENT_METHODS[method[attempts]],
                    "status": np.where(ok, "succeeded", "failed"),
                    "failure_reason": cat.FAILURE_REASONS[
                        rng.integers(0, len(cat.FAILURE_REASONS), attempts.size)
                    ],
                    "risk_score": np.round(risk, 4),
                    "payment_ts": pay_ts,
                }
            ).with_columns(
                pl.col("payment_ts").cast(ts),
                failure_reason=pl.when(pl.col("status") == "failed").then(pl.col("failure_reason")),
            ),
            rng,
        )
        charge = ok & (rng.random(attempts.size) < 0.002 + 0.25 * c["fraudster"][cust[attempts]])
        if charge.any():
            k = int(charge.sum())
            delay = rng.integers(15, 60, k)
            self._emit(
                "chargebacks",
                pl.DataFrame(
                    {
                        "chargeback_id": self._next_ids("chargeback", k),
                        "payment_id": pay_ids[charge],
                        "customer_id": cust[attempts][charge].astype(np.int64) + 1,
                        "amount": amount[attempts][charge],
                        "currency": cat.CURRENCIES[ccy[attempts][charge]],
                        "chargeback_ts": pay_ts[charge] + delay * DAY_US,
                        "reason": np.where(
                            c["fraudster"][cust[attempts][charge]], "fraud", "dispute"
                        ),
                    }
                ).with_columns(pl.col("chargeback_ts").cast(ts)),
                rng,
                release=delay.astype(np.int32),
            )
        self._ship(
            rng, d, np.flatnonzero(paid), order_id, cust, order_ts, amount, ccy, prod, line_order
        )
        # conversions: an order within 3 days of a campaign click
        conv = np.flatnonzero(c["click_day"][cust] >= d - 3)
        if conv.size:
            self._emit(
                "campaign_events",
                pl.DataFrame(
                    {
                        "event_id": self._next_ids("campaign_event", conv.size),
                        "campaign_id": c["click_campaign"][cust[conv]],
                        "customer_id": cust[conv].astype(np.int64) + 1,
                        "event_type": "conversion",
                        "event_ts": order_ts[conv] + 1_000_000,
                        "order_id": order_id[conv],
                    }
                ).with_columns(pl.col("event_ts").cast(ts)),
                rng,
            )
        # stock leaves the region's warehouses
        wh = region[line_order] * 2 + (order_id[line_order] % 2)
        np.subtract.at(g["stock"], (wh, prod), qty)

    def _ship(
        self,
        rng: np.random.Generator,
        d: int,
        idx: np.ndarray,
        order_id: np.ndarray,
        cust: np.ndarray,
        order_ts: np.ndarray,
        amount: np.ndarray,
        ccy: np.ndarray,
        prod: np.ndarray,
        line_order: np.ndarray,
    ) -> None:
        c, g = self.c, self.g
        n = idx.size
        if n == 0:
            return
        cu = cust[idx]
        region = c["region"][cu]
        disrupted = g["disrupted_until"][region] >= d
        late = rng.random(n) < np.where(disrupted, 0.45, 0.06)
        ship_lag = rng.integers(0, 2, n)
        promised = cat.PROMISED_TRANSIT_DAYS[region]
        transit = np.where(
            late, promised + rng.integers(1, 7, n), np.maximum(promised + rng.integers(-2, 1, n), 1)
        )
        shipped_ts = order_ts[idx] + ship_lag * DAY_US + 3_600_000_000 * rng.integers(2, 10, n)
        delivered_ts = shipped_ts + transit * DAY_US
        promised_ts = (order_ts[idx] // DAY_US + ship_lag + promised + 1) * DAY_US
        ship_ids = self._next_ids("shipment", n)
        base = {
            "shipment_id": ship_ids,
            "order_id": order_id[idx],
            "customer_id": cu.astype(np.int64) + 1,
            "region": cat.REGIONS[region],
            "warehouse_id": (region * 2 + order_id[idx] % 2 + 1).astype(np.int32),
            "carrier": cat.CARRIERS[region],
            "promised_ts": promised_ts,
            "shipped_ts": shipped_ts,
        }
        ts = pl.Datetime("us", "UTC")
        tcols = [
            pl.col(k).cast(ts) for k in ("promised_ts", "shipped_ts", "delivered_ts", "event_ts")
        ]
        self._emit(
            "shipments",
            pl.DataFrame(
                {
                    **base,
                    "status": "shipped",
                    "delivered_ts": pl.Series([None] * n, dtype=pl.Int64),
                    "event_ts": shipped_ts,
                }
            ).with_columns(tcols),
            rng,
            release=ship_lag.astype(np.int32),
        )
        deliver_day = ship_lag + transit
        self._emit(
            "shipments",
            pl.DataFrame(
                {
                    **base,
                    "status": "delivered",
                    "delivered_ts": delivered_ts,
                    "event_ts": delivered_ts,
                }
            ).with_columns(tcols),
            rng,
            release=deliver_day.astype(np.int32),
        )
        self._experience("late", cu[late], d + deliver_day[late])
        returned = rng.random(n) < 0.04 + 0.22 * late
        if returned.any():
            k = int(returned.sum())
            ret_lag = deliver_day[returned] + rng.integers(2, 12, k)
            ret_ts = delivered_ts[returned] + (ret_lag - deliver_day[returned]) * DAY_US
            reason = np.where(
                late[returned],
                "late_delivery",
                cat.RETURN_REASONS[rng.integers(1, len(cat.RETURN_REASONS), k)],
            )
            self._emit(
                "returns",
                pl.DataFrame(
                    {
                        "return_id": self._next_ids("return", k),
                        "shipment_id": ship_ids[returned],
                        "order_id": order_id[idx][returned],
                        "customer_id": cu[returned].astype(np.int64) + 1,
                        "return_ts": ret_ts,
                        "reason": reason,
                    }
                ).with_columns(pl.col("return_ts").cast(ts)),
                rng,
                release=ret_lag.astype(np.int32),
            )
            self._emit(
                "refunds",
                pl.DataFrame(
                    {
                        "refund_id": self._next_ids("refund", k),
                        "order_id": order_id[idx][returned],
                        "customer_id": cu[returned].astype(np.int64) + 1,
                        "refund_ts": ret_ts + DAY_US // 2,
                        "amount": amount[idx][returned],
                        "currency": cat.CURRENCIES[ccy[idx][returned]],
                        "reason": reason,
                    }
                ).with_columns(pl.col("refund_ts").cast(ts)),
                rng,
                release=ret_lag.astype(np.int32),
            )
            self._experience("ret", cu[returned], d + ret_lag)
        reviewed = rng.random(n) < 0.12
        if reviewed.any():
            k = int(reviewed.sum())
            first_line = np.searchsorted(line_order, idx[reviewed])
            lag = deliver_day[reviewed] + rng.integers(1, 8, k)
            rating = np.clip(np.round(4.3 - 1.6 * late[reviewed] + rng.normal(0, 0.8, k)), 1, 5)
            self._emit(
                "reviews",
                pl.DataFrame(
                    {
                        "review_id": self._next_ids("review", k),
                        "product_id": prod[first_line].astype(np.int64) + 1,
                        "customer_id": cu[reviewed].astype(np.int64) + 1,
                        "rating": rating.astype(np.int8),
                        "review_ts": delivered_ts[reviewed]
                        + (lag - deliver_day[reviewed]) * DAY_US,
                    }
                ).with_columns(pl.col("review_ts").cast(ts)),
                rng,
                release=lag.astype(np.int32),
            )

    def _marketing(self, rng: np.random.Generator, d: int, live: np.ndarray) -> None:
        c, g = self.c, self.g
        active = np.flatnonzero(g["campaign_end"] >= d)
        if active.size == 0:
            return
        sends = np.where(live, rng.poisson(c["email_rate"] / 7), 0)
        cust = np.repeat(np.arange(len(sends)), sends)
        n = cust.size
        if n == 0:
            return
        np.add.at(c["email"], cust, 1.0)
        camp = g["campaign_id"][active[rng.integers(0, active.size, n)]]
        send_ts = _ts(self.start_us, d, rng.uniform(6 * 3600, 20 * 3600, n))
        opened = rng.random(n) < 0.32 * np.exp(-0.08 * c["email"][cust])
        clicked = opened & (rng.random(n) < 0.22)
        c["click_day"][cust[clicked]] = d
        c["click_campaign"][cust[clicked]] = camp[clicked]
        kinds = [("send", np.ones(n, bool), 0), ("open", opened, 600), ("click", clicked, 900)]
        parts = []
        for kind, mask, offset in kinds:
            k = int(mask.sum())
            parts.append(
                pl.DataFrame(
                    {
                        "event_id": self._next_ids("campaign_event", k),
                        "campaign_id": camp[mask],
                        "customer_id": cust[mask].astype(np.int64) + 1,
                        "event_type": kind,
                        "event_ts": send_ts[mask]
                        + offset * 1_000_000 * (1 + rng.integers(0, 20, k)),
                        "order_id": pl.Series([None] * k, dtype=pl.Int64),
                    }
                )
            )
        frame = pl.concat(parts).with_columns(pl.col("event_ts").cast(pl.Datetime("us", "UTC")))
        self._emit("campaign_events", frame, rng)

    def _stock(self, rng: np.random.Generator, d: int) -> None:
        g = self.g
        stock = g["stock"]
        low = stock < 20
        stock[low] += rng.integers(100, 300, int(low.sum())).astype(np.int32)
        n_wh, n_p = stock.shape
        day0 = self.start_us // DAY_US
        frame = pl.DataFrame(
            {
                "snapshot_date": pl.Series(np.full(n_wh * n_p, day0 + d)).cast(pl.Date),
                "warehouse_id": np.repeat(np.arange(1, n_wh + 1, dtype=np.int32), n_p),
                "product_id": np.tile(np.arange(1, n_p + 1, dtype=np.int64), n_wh),
                "units_on_hand": np.maximum(stock.reshape(-1), 0),
            }
        )
        self._emit("stock_levels", frame, rng)

    # ------------------------------------------------------------------ persistence
    def save(self, folder: Path) -> None:
        """Persist hidden state and undelivered events so `--days` can continue the story."""
        tmp = folder.with_name(folder.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        np.savez(tmp / "customers.npz", **self.c)
        np.savez(tmp / "products.npz", **self.p)
        np.savez(tmp / "globals.npz", **self.g)
        for table, frames in self.pending.items():
            if frames:
                pl.concat(frames, how="vertical_relaxed").write_parquet(
                    tmp / f"pending-{table}.parquet"
                )
        meta = {
            "scale": self.scale.name,
            "seed": self.seed,
            "start": self.start.isoformat(),
            "dirty_share": self.dirty_share,
            "day": self.day,
            "ids": dict(self.ids),
        }
        (tmp / "world.json").write_text(json.dumps(meta, indent=2))
        if folder.exists():
            old = folder.with_name(folder.name + ".old")
            folder.rename(old)
            tmp.rename(folder)
            for f in old.iterdir():
                f.unlink()
            old.rmdir()
        else:
            tmp.rename(folder)

    @classmethod
    def load(cls, folder: Path, scale: Scale) -> World:
        """Restore a world saved by save()."""
        meta = json.loads((folder / "world.json").read_text())
        world = cls(scale, meta["seed"], date.fromisoformat(meta["start"]), meta["dirty_share"])
        world.day = meta["day"]
        world.ids.update(meta["ids"])
        world.c = dict(np.load(folder / "customers.npz"))
        world.p = dict(np.load(folder / "products.npz"))
        world.g = dict(np.load(folder / "globals.npz"))
        for f in sorted(folder.glob("pending-*.parquet")):
            world.pending[f.stem.removeprefix("pending-")] = [pl.read_parquet(f)]
        return world
