"""Container networks: bridges, veths, NAT, port proxies, embedded DNS."""
