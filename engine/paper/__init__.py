"""The paper exchange: a deterministic sans-I/O matching core, its fault model and its persistence.

``exchange.ExchangeCore`` matches orders against a seeded price and depth model; ``faults`` decides
how the event stream is duplicated, delayed and reordered; ``state`` keeps the exchange's own SQLite
file so it outlives a restart of the engine.
"""
