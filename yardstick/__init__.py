"""Yardstick catalogs built from real artwork that no curation code was written from.

`icons` turns freedesktop icon themes (Debian packages: papirus, breeze, oxygen, adwaita, numix,
tango, elementary-xfce, moka, suru) into a catalog in the contract format: the same object drawn by
several themes is one relevant set, each icon is composited onto a cluttered background at a known
box, and titles and descriptions carry the noise real catalogs have. Like demo_catalog it is a
fixture: no pipeline stage imports it, it shares no word list with curation, and nothing may be
tuned to it.
"""
