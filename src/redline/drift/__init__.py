"""Change across runs and over time: significance tests with multiple-comparison correction,
campaign drift between versions, CUSUM over guard tripwire rates, and risk-map charts."""
