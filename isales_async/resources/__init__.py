"""One module per group of endpoints; the classes are reached through ``ISalesClient``."""
