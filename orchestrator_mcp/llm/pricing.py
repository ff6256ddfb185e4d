"""What tokens cost: a default table (USD per million input / output tokens), which the
`llm.prices` setting extends or overrides."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

# Public list prices. Keys match a model id exactly, or as the longest key it contains
# (dated OpenAI snapshots, Bedrock ids with region prefixes and version suffixes).
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "anthropic.claude-3-haiku": (0.25, 1.25),
    "anthropic.claude-3-5-haiku": (0.80, 4.00),
    "anthropic.claude-haiku-4-5": (1.00, 5.00),
    "anthropic.claude-3-5-sonnet": (3.00, 15.00),
    "anthropic.claude-3-7-sonnet": (3.00, 15.00),
    "anthropic.claude-sonnet-4": (3.00, 15.00),
    "anthropic.claude-3-opus": (15.00, 75.00),
    "anthropic.claude-opus-4": (15.00, 75.00),
    "amazon.nova-micro": (0.035, 0.14),
    "amazon.nova-lite": (0.06, 0.24),
    "amazon.nova-pro": (0.80, 3.20),
    "meta.llama3-1-8b-instruct": (0.22, 0.22),
    "meta.llama3-1-70b-instruct": (0.72, 0.72),
}
# Models run on one's own machine cost nothing per token.
FREE_PROVIDERS = frozenset({"ollama", "scripted"})


class PriceLike(Protocol):
    input_per_mtok: float
    output_per_mtok: float


def price_of(model: str, prices: Mapping[str, PriceLike] | None = None,
             ) -> tuple[float, float] | None:
    """(input, output) USD per million tokens, or None when the model is unknown."""
    table = dict(DEFAULT_PRICES)
    for name, price in (prices or {}).items():
        table[name] = (price.input_per_mtok, price.output_per_mtok)
    if model in table:
        return table[model]
    candidates = [k for k in table if k in model]
    return table[max(candidates, key=len)] if candidates else None


def cost_usd(provider: str, model: str, input_tokens: int, output_tokens: int,
             prices: Mapping[str, PriceLike] | None = None) -> float | None:
    """Cost of one call, or None when the model's price is unknown. `prices` (the
    `llm.prices` setting) win over the built-in table, also for local providers."""
    if prices and model in prices:
        price: tuple[float, float] | None = price_of(model, prices)
    elif provider in FREE_PROVIDERS:
        return 0.0
    else:
        price = price_of(model, prices)
    if price is None:
        return None
    return round((input_tokens * price[0] + output_tokens * price[1]) / 1_000_000, 8)
