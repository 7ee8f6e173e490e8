"""Designs: the causal designs (DiD, ...) built on mlmci's estimators.

Each design lives in its own subpackage and is imported by its short public
path (``mlmci.did``); see :mod:`mlmci.designs.did`.
"""
