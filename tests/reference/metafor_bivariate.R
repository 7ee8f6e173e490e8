# metafor reference for the bivariate random-effects model of site ITT and
# first-stage effects (mlmci.designs.iv.multisite.bivariate_reml). Used by
# tests/test_reference_metafor.py.
#
# Usage (from the repository root):
#   OPENBLAS_NUM_THREADS=1 Rscript tests/reference/metafor_bivariate.R [OUTDIR]
# Reads metafor_bivariate_input.csv next to this script: one row per case and
# site with the site's ITT and first-stage estimates and their 2 x 2 sampling
# covariance (var_itt, cov_itt_first_stage, var_first_stage), as
# mlmci.designs.iv.multisite.site_effects computes them on simulated data
# (tests/test_reference_metafor.py writes the file: `python
# tests/test_reference_metafor.py`). Two cases:
#   interior  between-site covariance T well inside the parameter space
#   boundary  no between-site spread of the first stage in the simulation:
#             the REML optimum has the correlation at -1 (T singular)
# For each case fits
#   rma.mv(yi, V, mods = ~ outcome - 1, random = ~ outcome | site,
#          struct = "UN", method = "REML")
# on the stacked estimates (V block diagonal), twice: nlminb (metafor's
# default optimizer, rel.tol = 1e-10; tighter stops with "convergence = 1")
# and minqa's bobyqa restarted from the nlminb solution (rhoend = 1e-12).
# Writes metafor_bivariate.csv (17 significant digits), one row per case, fit
# (nlminb, bobyqa) and quantity:
#   mu:itt, mu:first_stage                    the hyper-means (coef)
#   vcov:itt:itt, vcov:itt:first_stage,
#   vcov:first_stage:first_stage              their covariance (vcov)
#   tau2:itt, tau2:first_stage, rho           T's variances and correlation
#   loglik                                    REML log-likelihood (logLik; metafor's
#                                             default REMLf = TRUE: includes
#                                             -(k - p)/2 log(2 pi) + 1/2 log|X'X|)
#   k, p                                      stacked estimates, fixed effects
suppressPackageStartupMessages(library(metafor))
args <- commandArgs(trailingOnly = TRUE)
here <- dirname(normalizePath(sub("--file=", "", grep("--file=", commandArgs(), value = TRUE))))
outdir <- if (length(args)) args[1] else here
fmt <- function(x) sprintf("%.17g", x)
versions <- sprintf("R %s; metafor %s; minqa %s", paste(R.version$major, R.version$minor, sep = "."),
                    as.character(packageVersion("metafor")), as.character(packageVersion("minqa")))

inputs <- read.csv(file.path(here, "metafor_bivariate_input.csv"))
rows <- list()
for (case in unique(inputs$case)) {
  s <- inputs[inputs$case == case, ]
  J <- nrow(s)
  long <- data.frame(
    site = rep(s$site, each = 2),
    outcome = factor(rep(c("itt", "first_stage"), J), levels = c("itt", "first_stage")),
    yi = as.vector(rbind(s$itt, s$first_stage))
  )
  V <- bldiag(lapply(seq_len(J), function(j) {
    matrix(c(s$var_itt[j], s$cov_itt_first_stage[j], s$cov_itt_first_stage[j], s$var_first_stage[j]), 2)
  }))
  fit_with <- function(control) {
    rma.mv(yi, V, mods = ~ outcome - 1, random = ~ outcome | site, struct = "UN",
           method = "REML", data = long, control = control)
  }
  first <- fit_with(list(rel.tol = 1e-10))
  fits <- list(
    nlminb = first,
    bobyqa = fit_with(list(optimizer = "bobyqa", rhobeg = 1e-3, rhoend = 1e-12, maxfun = 1e5,
                           tau2.init = first$tau2, rho.init = max(min(first$rho, 0.999999), -0.999999)))
  )
  for (name in names(fits)) {
    fit <- fits[[name]]
    vb <- vcov(fit)
    values <- c(coef(fit), vb[1, 1], vb[1, 2], vb[2, 2], fit$tau2, fit$rho,
                as.numeric(logLik(fit)), fit$k, fit$p)
    quantity <- c("mu:itt", "mu:first_stage", "vcov:itt:itt", "vcov:itt:first_stage",
                  "vcov:first_stage:first_stage", "tau2:itt", "tau2:first_stage", "rho",
                  "loglik", "k", "p")
    rows[[length(rows) + 1]] <- data.frame(case = case, fit = name, quantity = quantity,
                                           value = fmt(values), versions = versions)
  }
}
write.csv(do.call(rbind, rows), file.path(outdir, "metafor_bivariate.csv"), row.names = FALSE,
          quote = TRUE)
