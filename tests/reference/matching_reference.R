# Matching::Match on matching_data.csv: the ATT and ATE by nearest-neighbour matching on
# the logit score with replacement, ties averaged, Abadie-Imbens SEs (Var.calc = M), no bias
# adjustment. Writes matching_r.csv (17 significant digits).
#   Rscript tests/reference/matching_reference.R [OUTDIR]
# "continuous" is run with distance.tolerance = 0 and tolerance = 0 (exact ties only: Match's
# defaults, 1e-5 and 1.5e-8, act on *squared standardized* distances and would merge near-ties);
# "grid" (scores on a 1/8 grid, exact ties) with Match's default tolerances, which there tie
# exactly the equal distances. "continuous_default" repeats "continuous" with the defaults, and
# "continuous_x10" with the score times 10 (Weight = 1 rescales X, which changes nothing).
suppressPackageStartupMessages(library(Matching))
args <- commandArgs(trailingOnly = TRUE)
here <- tryCatch(dirname(normalizePath(sub("--file=", "", grep("--file=", commandArgs(), value = TRUE)))),
                 error = function(e) "tests/reference")
outdir <- if (length(args) >= 1) args[1] else here
data <- read.csv(file.path(here, "matching_data.csv"))
runs <- list(
  list(name = "continuous", data = "continuous", scale = 1, dtol = 0, tol = 0),
  list(name = "continuous_default", data = "continuous", scale = 1, dtol = 1e-5, tol = sqrt(.Machine$double.eps)),
  list(name = "continuous_x10", data = "continuous", scale = 10, dtol = 0, tol = 0),
  list(name = "grid", data = "grid", scale = 1, dtol = 1e-5, tol = sqrt(.Machine$double.eps))
)
rows <- list()
for (run in runs) {
  df <- data[data$dataset == run$data, ]
  for (estimand in c("ATT", "ATE")) {
    for (M in c(1, 2)) {
      fit <- Match(Y = df$y, Tr = df$d, X = df$s * run$scale, estimand = estimand, M = M,
                   ties = TRUE, Var.calc = M, BiasAdjust = FALSE, Weight = 1,
                   distance.tolerance = run$dtol, tolerance = run$tol)
      rows[[length(rows) + 1]] <- data.frame(
        run = run$name, dataset = run$data, estimand = estimand, M = M,
        est = sprintf("%.17g", fit$est), se = sprintf("%.17g", fit$se),
        matching_version = as.character(packageVersion("Matching")),
        r_version = paste(R.version$major, R.version$minor, sep = ".")
      )
    }
  }
}
write.csv(do.call(rbind, rows), file.path(outdir, "matching_r.csv"), row.names = FALSE, quote = FALSE)
