# AER reference for mlmci.iv on Card's (1995) returns to schooling data: Wooldridge,
# Introductory Econometrics, Example 15.4 (2SLS of log wage on education instrumented
# by growing up near a four-year college) and its OLS benchmark. Used by tests/test_iv.py.
#
# Usage:  Rscript tests/reference/aer_card.R <card.csv> <output.csv>
# The input CSV is written by tests/test_iv.py from mlmci.datasets.load("card")
# (Debian packages no `wooldridge` R data). Fits
#   AER::ivreg(lwage ~ educ + controls | nearc4 + controls)
#   lm(lwage ~ educ + controls)
# with controls exper, expersq, black, smsa, south, smsa66, reg662-reg669, and writes
# one row per model (ivreg, lm) for the educ coefficient:
#   estimate       the coefficient
#   se_classical   summary()'s standard error: residual variance on n - k degrees of
#                  freedom (k = 16 coefficients with the intercept)
#   se_hc0         sqrt(diag(sandwich::vcovHC(fit, type = "HC0")))
#   weak_f         (ivreg) the first-stage F of summary(fit, diagnostics = TRUE)
#                  ("Weak instruments"): classical, on (1, n - k)
#   nobs, df_residual and the R, AER and sandwich versions.
# Numbers are written with 17 significant digits (full double precision).

suppressPackageStartupMessages({
  library(AER)
  library(sandwich)
})

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 2L) stop("usage: Rscript aer_card.R <card.csv> <output.csv>")
card <- read.csv(args[[1L]])

controls <- c("exper", "expersq", "black", "smsa", "south", "smsa66", paste0("reg66", 2:9))
rhs <- paste(controls, collapse = " + ")
iv <- ivreg(as.formula(sprintf("lwage ~ educ + %s | nearc4 + %s", rhs, rhs)), data = card)
ols <- lm(as.formula(sprintf("lwage ~ educ + %s", rhs)), data = card)
weak <- summary(iv, diagnostics = TRUE)$diagnostics["Weak instruments", "statistic"]

row <- function(model, fit, weak_f) {
  data.frame(
    model = model,
    term = "educ",
    estimate = coef(fit)[["educ"]],
    se_classical = sqrt(diag(vcov(fit)))[["educ"]],
    se_hc0 = sqrt(diag(vcovHC(fit, type = "HC0")))[["educ"]],
    weak_f = weak_f,
    nobs = nobs(fit),
    df_residual = df.residual(fit),
    r_version = paste(R.version$major, R.version$minor, sep = "."),
    aer_version = as.character(packageVersion("AER")),
    sandwich_version = as.character(packageVersion("sandwich"))
  )
}
out <- rbind(row("ivreg", iv, weak), row("lm", ols, NA_real_))
fmt <- function(v) ifelse(is.na(v), "NA", formatC(v, digits = 17, format = "g"))
for (col in c("estimate", "se_classical", "se_hc0", "weak_f")) out[[col]] <- fmt(out[[col]])
write.csv(out, args[[2L]], row.names = FALSE, quote = FALSE)
