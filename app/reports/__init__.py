"""Reports: reporting events, their roll-up, CSAT, customer insight and volume alerts."""
