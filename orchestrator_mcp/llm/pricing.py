"""What tokens cost: a default table (USD per million tokens), overridable in config."""

from __future__ import annotations

# Public list prices; local models (ollama, scripted) cost nothing.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "o4-mini": (1.10, 4.40),
    "anthropic.claude-3-5-sonnet": (3.00, 15.00),
    "anthropic.claude-3-7-sonnet": (3.00, 15.00),
    "anthropic.claude-sonnet-4": (3.00, 15.00),
    "anthropic.claude-3-5-haiku": (0.80, 4.00),
    "anthropic.claude-3-haiku": (0.25, 1.25),
    "amazon.nova-pro": (0.80, 3.20),
    "amazon.nova-lite": (0.06, 0.24),
    "meta.llama3-1-70b-instruct": (0.72, 0.72),
}
FREE_PROVIDERS = {"ollama", "scripted"}

_overrides: dict[str, tuple[float, float]] = {}


def set_prices(prices: dict[str, tuple[float, float]]) -> None:
    _overrides.clear()
    _overrides.update(prices)


def _lookup(model: str) -> tuple[float, float] | None:
    table = {**DEFAULT_PRICES, **_overrides}
    if model in table:
        return table[model]
    # Bedrock ids carry region prefixes and version suffixes: us.anthropic.claude-...-v1:0
    candidates = [k for k in table if k in model]
    return table[max(candidates, key=len)] if candidates else None


def cost_usd(provider: str, model: str, input_tokens: int, output_tokens: int) -> float | None:
    """Cost of one call, or None when the model's price is unknown."""
    if provider in FREE_PROVIDERS:
        return 0.0
    price = _lookup(model)
    if price is None:
        return None
    return round((input_tokens * price[0] + output_tokens * price[1]) / 1_000_000, 8)
