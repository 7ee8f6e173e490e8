# Runs the R column of the guide's syntax Rosetta stone (book/guide.md).
#
# Usage:  Rscript tests/reference/rosetta.R <rows.csv> <datadir> <output.csv>
#
# tests/test_rosetta.py writes <rows.csv> from the rows defined in book/guide.md
# (columns: id, code, get, code_sha) and the data frames the rows use to
# <datadir>/<name>.csv (from mlmci.datasets, as the Python column loads them).
# For every row this script loads those data frames into a fresh environment,
# evaluates the row's code exactly as the page shows it, then its `get`
# expression, which returns c(estimate, std_error) of the row's headline term.
# The output has one line per row: id, estimate, std_error (17 significant
# digits; NA where the row compares no standard error), the code_sha it ran
# (so a stored output can be matched to the code on the page), ok (FALSE with
# the error message when a package is missing or the code fails) and the
# versions of R and of the packages involved.
#
# Regenerate the stored output (needs Debian's r-cran-lme4, r-cran-plm,
# r-cran-sandwich, r-cran-lmtest, r-cran-estimatr):
#   .venv/bin/python tests/test_rosetta.py --write-reference

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 3L) stop("usage: Rscript rosetta.R <rows.csv> <datadir> <output.csv>")
if (Sys.getenv("OPENBLAS_NUM_THREADS") == "") Sys.setenv(OPENBLAS_NUM_THREADS = "1")
rows <- read.csv(args[[1L]], stringsAsFactors = FALSE)
datadir <- args[[2L]]

# Grouping variables are factors in R (lme4 and plm need them as such).
factors <- c("nr", "county", "subject", "school", "sid", "entry_school")
frames <- list()
for (path in list.files(datadir, pattern = "\\.csv$", full.names = TRUE)) {
  frame <- read.csv(path)
  for (col in intersect(factors, names(frame))) frame[[col]] <- factor(frame[[col]])
  frames[[sub("\\.csv$", "", basename(path))]] <- frame
}

version_of <- function(pkg) {
  if (requireNamespace(pkg, quietly = TRUE)) as.character(packageVersion(pkg)) else "absent"
}
fmt <- function(v) ifelse(is.na(v), "NA", formatC(v, digits = 17, format = "g"))

out <- lapply(seq_len(nrow(rows)), function(i) {
  env <- list2env(frames, parent = globalenv())
  result <- tryCatch({
    invisible(capture.output(suppressMessages(suppressWarnings(
      eval(parse(text = rows$code[[i]]), envir = env)))))
    value <- eval(parse(text = rows$get[[i]]), envir = env)
    list(estimate = value[[1L]], std_error = value[[2L]], ok = TRUE, message = "")
  }, error = function(e) {
    list(estimate = NA_real_, std_error = NA_real_, ok = FALSE,
         message = gsub("[\r\n,]+", " ", conditionMessage(e)))
  })
  data.frame(id = rows$id[[i]], estimate = fmt(result$estimate),
             std_error = fmt(result$std_error), code_sha = rows$code_sha[[i]],
             ok = result$ok, message = result$message)
})
out <- do.call(rbind, out)
out$r_version <- paste(R.version$major, R.version$minor, sep = ".")
for (pkg in c("lme4", "plm", "sandwich", "lmtest", "estimatr", "rdrobust")) {
  out[[paste0(pkg, "_version")]] <- version_of(pkg)
}
write.csv(out, args[[3L]], row.names = FALSE, quote = TRUE)
