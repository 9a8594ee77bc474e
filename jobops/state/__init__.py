"""Every Redis touch: keys, Lua scripts, and the fleet state kept in Redis."""
