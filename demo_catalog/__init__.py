"""The synthetic demo catalog and its ground-truth scorers: a test fixture that lives apart.

No pipeline stage imports this package and it shares no word list with `curation`: the rules refiner
and the offline detector must work on catalogs they were not written from, this one included.
"""
