"""Shipped pipeline steps: notebooks a spec names as `notebook: aidevops:NAME`, and the code behind them (generic.py)."""
