"""Trading Desk safeguard engine. No Qt import anywhere below this package."""
