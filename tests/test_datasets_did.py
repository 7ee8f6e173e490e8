"""The DiD chapter's datasets: cards match the data, and the facts the chapter relies on."""

from __future__ import annotations

import numpy as np
import pytest

from mlmci import datasets, did


@pytest.mark.parametrize("name", ["castle", "kielmc", "injury", "jtrain"])
def test_card_matches_data(name):
    frame = datasets.load(name)
    card = datasets.describe(name)
    assert frame.shape == card.shape
    assert list(frame.columns) == list(card.codebook)
    assert {c: str(t) for c, t in frame.dtypes.items()} == dict(card.dtypes)
    frame.iloc[0, 0] = -1  # a copy: later loads are unaffected
    assert datasets.load(name).iloc[0, 0] != -1


def test_castle_is_a_balanced_staggered_panel():
    castle = datasets.load("castle")
    assert castle["sid"].nunique() == 50 and castle["year"].nunique() == 11
    assert castle.groupby("sid").size().eq(11).all()
    g = did.cohorts(castle, unit="sid", time="year", treatment="post")
    sizes = g[np.isfinite(g)].value_counts().sort_index()
    assert sizes.to_dict() == {2006.0: 1, 2007.0: 13, 2008.0: 4, 2009.0: 2, 2010.0: 1}
    assert (~np.isfinite(g)).sum() == 29


def test_kielmc_and_injury_cross_sections():
    kiel = datasets.load("kielmc")
    assert kiel["year"].value_counts().to_dict() == {1978: 179, 1981: 142}
    assert (kiel["y81nrinc"] == kiel["y81"] * kiel["nearinc"]).all()
    inj = datasets.load("injury")
    assert int(inj["ky"].sum()) == 5626 and int(inj["mi"].sum()) == 1524
    assert (inj["afhigh"] == inj["afchnge"] * inj["highearn"]).all()


def test_jtrain_grant_switches_off_and_complete_firms():
    jt = datasets.load("jtrain")
    assert jt["fcode"].nunique() == 157
    complete = jt.groupby("fcode")["lscrap"].apply(lambda s: s.notna().all())
    assert int(complete.sum()) == 54
    assert jt.groupby("fcode")["grant"].sum().max() == 1  # a grant is one year only
