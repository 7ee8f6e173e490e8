# Reference values for mlmci.panel's clustered fixed-effects standard errors.
#
# The fixed-effects specification of book/fe_re_mundlak.md on the union wage
# panel (Vella & Verbeek 1998; Wooldridge's `wagepan`): log wage on expersq,
# married and union with year dummies and person effects (exper is absorbed:
# with year effects it rises by one a year for everybody), standard errors
# clustered by person.
#
# Usage:  Rscript tests/reference/plm_wagepan.R <wagepan.csv> <output.csv>
# The input CSV is written by tests/test_panel.py from mlmci.datasets.load("wagepan")
# (Debian packages no `wooldridge` R data). The output has one row per coefficient:
#
#   estimate          plm(model = "within") coefficient (the const row: the
#                     intercept of the Stata-style regression below)
#   se_plm_sss        plm::vcovHC(type = "sss", cluster = "group"): G/(G-1) (N-1)/(N-k)
#                     times the sandwich, k = 10 coefficients of the within
#                     model (3 regressors + 7 year dummies; no intercept)
#   se_cr1s           clubSandwich::vcovCR(type = "CR1S"): the same factor,
#                     the same k (so it must equal se_plm_sss)
#   se_stata          Stata's `xtreg lwage expersq married union i.year, fe
#                     vce(cluster nr)`: G/(G-1) (N-1)/(N-K) with K = 11 (the
#                     intercept Stata reports counts too). Reproduced in R by
#                     sandwich::vcovCL(type = "HC1", cadjust = TRUE) on the OLS
#                     fit of xtreg's transformed equation
#                     y_it - ybar_i + ybar on x_it - xbar_i + xbar and a constant.
#
# plus columns nobs, n_clusters, k_plm, k_stata and the R and package versions.
# Numbers are written with 17 significant digits (full double precision).

suppressPackageStartupMessages({
  library(plm)
  library(sandwich)
  library(clubSandwich)
})

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 2L) stop("usage: Rscript plm_wagepan.R <wagepan.csv> <output.csv>")
wages <- read.csv(args[[1L]])

regressors <- c("expersq", "married", "union")
wages$year <- factor(wages$year)
formula <- lwage ~ expersq + married + union + year
panel <- pdata.frame(wages, index = c("nr", "year"))
fit <- plm(formula, data = panel, model = "within", effect = "individual")

v_sss <- vcovHC(fit, method = "arellano", type = "sss", cluster = "group")
v_cr1s <- as.matrix(vcovCR(fit, cluster = panel$nr, type = "CR1S"))

# Stata's xtreg, fe: OLS of the person-demeaned variables plus their grand means
# on a constant. The year dummies enter the same way (they are regressors in
# `xtreg ... i.year`), so K counts the constant, the 3 regressors and 7 dummies.
design <- model.matrix(~ expersq + married + union + year, data = wages)[, -1L]
demean <- function(v) v - ave(v, wages$nr) + mean(v)
stata_x <- apply(design, 2L, demean)
stata_y <- demean(wages$lwage)
stata_fit <- lm(stata_y ~ stata_x)
names(stata_fit$coefficients) <- c("const", colnames(design))
v_stata <- vcovCL(stata_fit, cluster = wages$nr, type = "HC1", cadjust = TRUE)
dimnames(v_stata) <- list(names(coef(stata_fit)), names(coef(stata_fit)))

within_coef <- coef(fit)
stopifnot(isTRUE(all.equal(unname(within_coef), unname(coef(stata_fit)[names(within_coef)]),
                           tolerance = 1e-10)))

terms <- c("const", names(within_coef))
estimate <- c(coef(stata_fit)[["const"]], within_coef)
se_or_na <- function(v) {
  out <- rep(NA_real_, length(terms))
  names(out) <- terms
  present <- intersect(terms, rownames(v))
  out[present] <- sqrt(diag(v)[present])
  out
}
out <- data.frame(
  term = terms,
  estimate = unname(estimate),
  se_plm_sss = unname(se_or_na(v_sss)),
  se_cr1s = unname(se_or_na(v_cr1s)),
  se_stata = unname(se_or_na(v_stata)),
  nobs = nrow(wages),
  n_clusters = length(unique(wages$nr)),
  k_plm = length(within_coef),
  k_stata = length(coef(stata_fit)),
  r_version = paste(R.version$major, R.version$minor, sep = "."),
  plm_version = as.character(packageVersion("plm")),
  sandwich_version = as.character(packageVersion("sandwich")),
  clubSandwich_version = as.character(packageVersion("clubSandwich"))
)
fmt <- function(v) ifelse(is.na(v), "NA", formatC(v, digits = 17, format = "g"))
for (col in c("estimate", "se_plm_sss", "se_cr1s", "se_stata")) out[[col]] <- fmt(out[[col]])
write.csv(out, args[[2L]], row.names = FALSE, quote = FALSE)
