# lme4 reference outputs for tests/test_reference_lme4.py.
#
# Usage (from the repository root):
#   Rscript tests/reference/lme4_reference.R [OUTDIR]
# OUTDIR defaults to tests/reference/. Needs only Debian's r-cran-lme4 and
# r-cran-mlmrev (no network, no CRAN). Reads lme4_models.csv and lme4_data/
# next to this script; writes, at full precision (17 significant digits):
#   lme4_fits.csv    one row per model x fit kind: log-likelihood, sigma, the
#                    singular flag, min of theta's diagonal, theta, optimizer
#                    messages, R / lme4 / Matrix versions
#   lme4_fixef.csv   fixed effects and their standard errors (vcov())
#   lme4_varcorr.csv variance components (SDs and correlations, as VarCorr())
#   lme4_theta.csv   theta element by element, with names and lower bounds
# Each model is fitted four times ("fit" column): "default" = lmer()'s default
# control (nloptwrap); "tight_bobyqa" = bobyqa, rhobeg 0.2, rhoend 1e-12,
# maxfun 1e6 from lme4's starting point; "tight_restart" = the same bobyqa
# restarted from the default fit's theta (rhobeg 1e-3); "tight_nlopt" =
# nloptwrap's BOBYQA with xtol_abs 1e-13, ftol_abs 1e-15. The row "tight" repeats
# the best of the three (highest log-likelihood; "source" names it), and only
# "default" and "tight" have rows in the fixef / varcorr / theta tables.
# lme4's default optimizer stops loosely (on sleepstudy theta moves by ~1e-5
# relative under the tight ones), so the tests compare with "tight" and use
# the distance between "default" and "tight" to judge conditioning.
# LME4_REF_MODELS=<regex> fits only the matching models (for experiments).

# Multithreaded OpenBLAS changes the last bits of CHOLMOD's sums from run to run,
# and flat optima amplify them (theta moved by 4e-8 between two runs on the
# crossed design). Single-threaded, the output is the same on every run: rerun
# this script that way if the caller did not.
if (Sys.getenv("OPENBLAS_NUM_THREADS") != "1" || Sys.getenv("OMP_NUM_THREADS") != "1") {
  Sys.setenv(OPENBLAS_NUM_THREADS = "1", OMP_NUM_THREADS = "1")
  args <- commandArgs(trailingOnly = FALSE)
  self <- sub("^--file=", "", args[grep("^--file=", args)])
  status <- system2(file.path(R.home("bin"), "Rscript"),
                    shQuote(c(self, commandArgs(trailingOnly = TRUE))))
  quit(save = "no", status = status)
}

suppressPackageStartupMessages({
  library(lme4)
  library(mlmRev)
})

args <- commandArgs(trailingOnly = FALSE)
script <- sub("^--file=", "", args[grep("^--file=", args)])
here <- if (length(script)) dirname(normalizePath(script)) else getwd()
trailing <- commandArgs(trailingOnly = TRUE)
outdir <- if (length(trailing)) trailing[1] else here
dir.create(outdir, showWarnings = FALSE, recursive = TRUE)

fmt <- function(x) ifelse(is.na(x), "NA", sprintf("%.17g", x))

models <- read.csv(file.path(here, "lme4_models.csv"), stringsAsFactors = FALSE,
                   colClasses = "character")
only <- Sys.getenv("LME4_REF_MODELS")  # a regular expression: fit only the models it matches
if (nzchar(only)) models <- models[grepl(only, models$model), , drop = FALSE]

native <- list(
  sleepstudy = function() as.data.frame(lme4::sleepstudy),
  exam = function() as.data.frame(mlmRev::Exam),
  hsb82 = function() as.data.frame(mlmRev::Hsb82)
)
datasets <- list()
get_data <- function(key) {
  if (is.null(datasets[[key]])) {
    datasets[[key]] <<- if (key %in% names(native)) native[[key]]() else
      read.csv(file.path(here, "lme4_data", paste0(key, ".csv")))
  }
  datasets[[key]]
}

# The candidates for "tight": the best (highest log-likelihood) of them is stored
# as fit "tight". bobyqa from lme4's start can get stuck where a variance is 0
# (it does on some simulated designs here), so it is also restarted from the
# default fit's optimum, and nloptwrap's BOBYQA is run with tight tolerances.
tight_kinds <- list(
  tight_bobyqa = list(control = lmerControl(
    optimizer = "bobyqa", optCtrl = list(rhobeg = 0.2, rhoend = 1e-12, maxfun = 1e6),
    check.conv.singular = "ignore", calc.derivs = FALSE), restart = FALSE),
  tight_restart = list(control = lmerControl(
    optimizer = "bobyqa", optCtrl = list(rhobeg = 1e-3, rhoend = 1e-12, maxfun = 1e6),
    check.conv.singular = "ignore", calc.derivs = FALSE), restart = TRUE),
  tight_nlopt = list(control = lmerControl(
    optimizer = "nloptwrap", optCtrl = list(algorithm = "NLOPT_LN_BOBYQA", xtol_abs = 1e-13,
                                            ftol_abs = 1e-15, xtol_rel = 0, ftol_rel = 0,
                                            maxeval = 1e6),
    check.conv.singular = "ignore", calc.derivs = FALSE), restart = FALSE))
default_control <- lmerControl(check.conv.singular = "ignore")

term_name <- function(x) ifelse(x == "(Intercept)", "Intercept", x)

fits <- list(); fixef_rows <- list(); vc_rows <- list(); theta_rows <- list()
versions <- c(R = paste(R.version$major, R.version$minor, sep = "."),
              lme4 = as.character(packageVersion("lme4")),
              Matrix = as.character(packageVersion("Matrix")))
timing <- nzchar(Sys.getenv("LME4_REF_TIMING"))

fit_one <- function(m, df, control, start = NULL) {
  msgs <- character(0)
  args <- list(formula = as.formula(m$formula), data = df, REML = as.logical(m$reml),
               control = control)
  if (nzchar(m$weights)) args$weights <- df[[m$weights]]
  if (!is.null(start)) args$start <- start
  fit <- withCallingHandlers(
    do.call(lmer, args),
    warning = function(w) {
      msgs <<- c(msgs, conditionMessage(w)); invokeRestart("muffleWarning")
    },
    message = function(w) {
      msgs <<- c(msgs, trimws(conditionMessage(w))); invokeRestart("muffleMessage")
    })
  opt <- fit@optinfo
  attr(fit, "msgs") <- unique(c(msgs, opt$conv$lme4$messages, opt$message))
  fit
}

fit_row <- function(m, kind, fit, source = kind) {
  theta <- getME(fit, "theta")
  lower <- getME(fit, "lower")
  opt <- fit@optinfo
  data.frame(
    model = m$model, fit = kind, source = source, reml = m$reml, nobs = nobs(fit),
    llf = fmt(as.numeric(logLik(fit))), sigma = fmt(sigma(fit)),
    singular = isSingular(fit, tol = 1e-4), min_theta_diag = fmt(min(theta[lower == 0])),
    theta = paste(fmt(theta), collapse = ";"), optimizer = opt$optimizer,
    feval = opt$feval,
    messages = paste(gsub("[\r\n]+", " ", attr(fit, "msgs")), collapse = " | "),
    R = versions[["R"]], lme4 = versions[["lme4"]], Matrix = versions[["Matrix"]],
    stringsAsFactors = FALSE)
}

for (i in seq_len(nrow(models))) {
  m <- models[i, ]
  df <- get_data(m$data)
  for (f in strsplit(m$factors, ";")[[1]]) df[[f]] <- factor(df[[f]])
  t0 <- proc.time()[["elapsed"]]
  default <- fit_one(m, df, default_control)
  candidates <- lapply(tight_kinds, function(k)
    fit_one(m, df, k$control, start = if (k$restart) getME(default, "theta")))
  llfs <- vapply(candidates, function(f) as.numeric(logLik(f)), 0)
  best <- names(candidates)[which.max(llfs)]
  if (timing) cat(m$model, proc.time()[["elapsed"]] - t0, "\n")
  fits[[length(fits) + 1]] <- fit_row(m, "default", default)
  for (k in names(candidates)) fits[[length(fits) + 1]] <- fit_row(m, k, candidates[[k]])
  fits[[length(fits) + 1]] <- fit_row(m, "tight", candidates[[best]], source = best)
  for (kind in c("default", "tight")) {
    fit <- if (kind == "tight") candidates[[best]] else default
    theta <- getME(fit, "theta")
    b <- fixef(fit)
    se <- sqrt(diag(as.matrix(vcov(fit))))
    fixef_rows[[length(fixef_rows) + 1]] <- data.frame(
      model = m$model, fit = kind, term = term_name(names(b)), estimate = fmt(unname(b)),
      std_error = fmt(unname(se)), stringsAsFactors = FALSE)
    vc <- as.data.frame(VarCorr(fit))
    is_corr <- !is.na(vc$var2)
    vc_rows[[length(vc_rows) + 1]] <- data.frame(
      model = m$model, fit = kind,
      component = ifelse(is_corr, "corr", "sd"),
      group = vc$grp,
      term = ifelse(vc$grp == "Residual", "Residual",
                    ifelse(is_corr, paste(term_name(vc$var1), term_name(vc$var2), sep = ", "),
                           term_name(vc$var1))),
      estimate = fmt(vc$sdcor), stringsAsFactors = FALSE)
    theta_rows[[length(theta_rows) + 1]] <- data.frame(
      model = m$model, fit = kind, index = seq_along(theta), name = names(theta),
      lower = fmt(getME(fit, "lower")), estimate = fmt(unname(theta)),
      stringsAsFactors = FALSE)
  }
}

write <- function(rows, name) {
  out <- do.call(rbind, rows)
  write.csv(out, file.path(outdir, name), row.names = FALSE, quote = TRUE)
}
write(fits, "lme4_fits.csv")
write(fixef_rows, "lme4_fixef.csv")
write(vc_rows, "lme4_varcorr.csv")
write(theta_rows, "lme4_theta.csv")
cat(sprintf("lme4 %s on R %s: %d models x 4 fits written to %s\n", versions[["lme4"]],
            versions[["R"]], nrow(models), outdir))
