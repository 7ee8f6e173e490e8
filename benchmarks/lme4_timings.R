# Times lme4::lmer on one CSV: a cold first fit, then `repeats` warm fits (median).
# Usage: Rscript lme4_timings.R data.csv "y ~ x + (x | g)" repeats
# Prints one JSON line: cold, warm, the fixed effects, R's and lme4's versions.
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
data <- read.csv(args[1])
form <- as.formula(args[2])
repeats <- as.integer(args[3])
now <- function() as.numeric(Sys.time())  # microsecond resolution, unlike proc.time()
start <- now()
fit <- lmer(form, data = data, REML = TRUE)
cold <- now() - start
warm <- numeric(repeats)
for (i in seq_len(repeats)) {
  start <- now()
  fit <- lmer(form, data = data, REML = TRUE)
  warm[i] <- now() - start
}
beta <- fixef(fit)
cat(sprintf(
  '{"cold": %.6f, "warm": %.6f, "names": [%s], "beta": [%s], "r_version": "%s", "lme4_version": "%s"}\n',
  cold, median(warm),
  paste0('"', names(beta), '"', collapse = ", "),
  paste(sprintf("%.17g", beta), collapse = ", "),
  R.version.string, as.character(packageVersion("lme4"))
))
