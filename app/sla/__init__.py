"""SLA clocks: business-hours calendars, policies, marketplace reply rules, reply windows."""
