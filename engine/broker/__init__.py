"""The Broker port and its adapters."""
